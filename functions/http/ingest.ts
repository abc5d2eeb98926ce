/** The write path: ingest, document changes, and the Digital Twin ingest route. */
import { db } from "../../core/db";
import * as Ingest from "../../core/ingest";
import { http } from "./chain";

export const handler = http({
  "POST /v1/ingest": async ({ caller, body, signal }) => ({
    body: await Ingest.run(await db(), caller, body.documents, { signal }),
  }),
  "PATCH /v1/documents/{id}": async ({ caller, params, body, signal }) => ({
    body: await Ingest.patch(await db(), caller, params.id, body, signal),
  }),
  "POST /api/ingest": async ({ caller, body, signal }) => {
    const result = await Ingest.run(await db(), caller, body.documents, { signal });
    return { body: { success: true as const, ...result } };
  },
});
