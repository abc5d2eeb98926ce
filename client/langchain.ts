/**
 * `engram/langchain`: Engram as a LangChain.js retriever. Each search result becomes a `Document` whose
 * metadata is the document's own, as stored, plus Engram's fields (ids, title, source, score, location...):
 * under `engram` (or the `fieldsKey` given), and beside the document's keys where it has none of that name. The
 * document's own keys always win, that one included: pick a `fieldsKey` its metadata never uses.
 *
 *   const retriever = new EngramRetriever({ client: createClient({ baseUrl, apiKey }), topK: 4 });
 *   const docs = await retriever.invoke("refund window");
 */
import type { CallbackManagerForRetrieverRun } from "@langchain/core/callbacks/manager";
import { Document } from "@langchain/core/documents";
import { BaseRetriever, type BaseRetrieverInput } from "@langchain/core/retrievers";
import type { EngramClient, SearchRequest } from "./index";

export interface EngramRetrieverInput extends BaseRetrieverInput, Omit<SearchRequest, "query"> {
  client: EngramClient;
  /** The metadata key Engram's fields go under (default `engram`); a document's own key of that name keeps its value. */
  fieldsKey?: string;
}

export class EngramRetriever extends BaseRetriever {
  static lc_name() {
    return "EngramRetriever";
  }
  lc_namespace = ["engram", "retrievers"];
  private readonly client: EngramClient;
  private readonly search: Omit<SearchRequest, "query">;
  private readonly fieldsKey: string;

  constructor({ client, fieldsKey = "engram", callbacks, tags, metadata, verbose, ...search }: EngramRetrieverInput) {
    super({ callbacks, tags, metadata, verbose });
    this.client = client;
    this.fieldsKey = fieldsKey;
    this.search = search;
  }

  // BaseRetriever.invoke (@langchain/core 1.4) hands this the run's callbacks only, not the call's signal or
  // timeout: the search cannot be cancelled from LangChain.
  async _getRelevantDocuments(query: string, _run?: CallbackManagerForRetrieverRun): Promise<Document[]> {
    const found = await this.client.search({ ...this.search, query });
    return found.results.map((r) => {
      const engram = {
        documentId: r.documentId,
        scope: r.scope,
        chunkId: r.chunkId,
        ordinal: r.ordinal,
        title: r.title,
        source: r.source,
        createdAt: r.createdAt,
        score: r.score,
        scale: found.scale,
        location: r.location,
      };
      // The document's own keys win (a `score`, `source` or `engram` it was stored with comes back as it was stored):
      // its metadata is never changed. Engram's fields stay readable under `fieldsKey` unless the document has it too.
      const metadata = { ...engram, [this.fieldsKey]: engram, ...r.metadata };
      return new Document({ id: r.chunkId, pageContent: r.content, metadata });
    });
  }
}
