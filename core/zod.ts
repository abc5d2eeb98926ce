/**
 * zod for every schema in core: `import * as z from "../zod"`. It is zod 4's functional build
 * (`zod/mini`: `z.optional(z.string().check(z.maxLength(9)))` where classic zod chains methods),
 * whose unused parts a bundler leaves out (classic zod puts every method, and the JSON Schema
 * converter, on each schema) and whose schemas cost less to build at cold start. The same
 * validation core underneath gives the same issues, paths and codes. Classic zod sets English
 * messages itself; mini leaves that to its user, so it happens here, before any schema.
 */
import { config } from "zod/mini";
import en from "zod/v4/locales/en.js";

config(en());

export * from "zod/mini";

/**
 * Metadata marking a field that its schema defaults only to answer a missing value with a code of
 * its own: the OpenAPI document lists it as required, without the default (core/api/openapi.ts).
 */
export const REQUIRED_IN_DOCS = "x-engram-required";
