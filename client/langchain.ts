/**
 * `engram/langchain`: Engram as a LangChain.js retriever. Each search result becomes a `Document` whose
 * metadata is the document's own, as stored, plus Engram's fields (ids, title, source, score, location...):
 * always under `engram`, and beside the document's keys where it has none of that name.
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
}

export class EngramRetriever extends BaseRetriever {
  static lc_name() {
    return "EngramRetriever";
  }
  lc_namespace = ["engram", "retrievers"];
  private readonly client: EngramClient;
  private readonly search: Omit<SearchRequest, "query">;

  constructor({ client, callbacks, tags, metadata, verbose, ...search }: EngramRetrieverInput) {
    super({ callbacks, tags, metadata, verbose });
    this.client = client;
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
      // The document's own keys win (a `score` or `source` it was stored with comes back as it was stored);
      // Engram's fields stay readable, unshadowed, under `engram`.
      return new Document({ id: r.chunkId, pageContent: r.content, metadata: { ...engram, ...r.metadata, engram } });
    });
  }
}
