/** One file uploaded as multipart/form-data: extracted (PDF, Word, web page, ...) and ingested. The only function holding the parsers. */
import { db } from "../../core/db";
import * as Upload from "../../core/extract/upload";
import { http } from "./chain";

export const handler = http({
  "POST /v1/documents/upload": async ({ caller, body, headers, signal }) => ({
    body: await Upload.upload(await db(), caller, body, headers["content-type"], { signal }),
  }),
});
