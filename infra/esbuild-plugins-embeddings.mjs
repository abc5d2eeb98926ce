/**
 * esbuild plugins for the Lambda bundles that embed but never chat (ingest, search): those of
 * infra/esbuild-plugins.mjs, with openai's chat resource and server-sent events left out too.
 * SST loads a plugins file by path (`nodejs.plugins` in infra/functions.ts), hence this file.
 */
import { pluginsFor } from "./esbuild-plugins.mjs";

export default pluginsFor(["embeddings"]);
