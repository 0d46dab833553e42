"""Built-in plugin "retrieval": the bm25 retriever behind the `retrieve:K` prompt variant."""
