/** `POST /v1/search`: hybrid, vector or keyword search over the caller's scope. */
import { db } from "../../core/db";
import * as Search from "../../core/search";
import { http } from "./chain";

export const handler = http({
  "POST /v1/search": async ({ caller, body, signal }) => ({
    body: await Search.query(await db(), caller, body, { signal }),
  }),
});
