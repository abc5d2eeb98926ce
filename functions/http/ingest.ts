/** The write path: ingest, document changes, and the Digital Twin ingest route. */
import { db } from "../../core/db";
import { CompatIngestRequest, IngestRequest, PatchRequest } from "../../core/document/schema";
import * as Ingest from "../../core/ingest";
import { http } from "./chain";

export const handler = http({
  "POST /v1/ingest": async ({ caller, body, signal }) => {
    const { documents } = IngestRequest.parse(body);
    return { body: await Ingest.run(await db(), caller, documents, { signal }) };
  },
  "PATCH /v1/documents/{id}": async ({ caller, params, body, signal }) => {
    return { body: await Ingest.patch(await db(), caller, params.id ?? "", PatchRequest.parse(body), signal) };
  },
  "POST /api/ingest": async ({ caller, body, signal }) => {
    const { documents } = CompatIngestRequest.parse(body);
    const result = await Ingest.run(await db(), caller, documents, { signal });
    return { body: { success: true, ...result } };
  },
});
