"""The knowledge base's search index: dense sentence embeddings and BM25, fused by reciprocal rank.

    index = open_index("kb.jsonl", encoder="minilm-l6")   # built once, then reloaded from the cache
    index.search(["my card has not arrived"], k=5) -> [[Hit(passage, score, similarity), ...]]

Each query ranks the passages twice: by the cosine similarity of its embedding to theirs (dense:
paraphrases) and by BM25 over their words (sparse: rare exact terms, product names, codes). The two
rankings are fused by weighted reciprocal rank fusion (Cormack et al. 2009): a passage scores
1 / (RRF_K + dense rank) + SPARSE_WEIGHT / (RRF_K + sparse rank), ranks counted from 1, over the
first CANDIDATES of each. Dense leads: for the 1317 train and dev messages of the 26 Banking77
intents that benchmarks/assistant.py holds out, against the shipped knowledge base, the right passage
is in the top 5 for 0.885 with equal weights and k = 60, 0.911 for dense alone, and 0.914 with these
constants (the best of k in {10, 60} and weights 0 to 1), which still let an exact-term match climb.
`score` is the fused score (it orders the hits); `similarity` is the dense cosine, an
absolute scale the assistant's retrieval threshold reads.

Dense search is exact (one matrix product) by default; from FAISS_ABOVE passages it uses a FAISS
HNSW graph when faiss-cpu is installed (approximate, much faster at that size). The embeddings are
computed once per knowledge base and encoder and kept in the cache (`knowledge/<key>/`), keyed by
the files' content hash, so a changed file is re-indexed and an unchanged one never is; BM25 is
rebuilt on load (seconds even for 100k passages, and nothing pickled is read back).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promptlab.backends.sentence_encoders import LoadedEncoder, load_encoder
from promptlab.data.knowledge import MAX_PASSAGE_CHARS, Passage, content_hash, read_knowledge
from promptlab.errors import UserError
from promptlab.paths import cache_dir
from promptlab.runtime.outputs import write_atomic, write_json, write_jsonl

DEFAULT_ENCODER = "minilm-l6"
RRF_K = 10  # damps the weight of the very first ranks (Cormack et al. use 60)
SPARSE_WEIGHT = 0.3
CANDIDATES = 50  # passages each ranking contributes to the fusion
FAISS_ABOVE = 50_000
SEARCHES = ("auto", "exact", "faiss")
INDEX_VERSION = 1  # bump when the cached files change shape


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float  # the fused reciprocal-rank score: orders the hits
    similarity: float  # the dense cosine similarity of query and passage

    def as_dict(self) -> dict:
        return {"id": self.passage.id, "score": round(self.score, 6), "similarity": round(self.similarity, 4),
                "title": self.passage.title, "text": self.passage.text, "link": self.passage.link}


class KnowledgeIndex:
    def __init__(self, passages: list[Passage], embeddings: np.ndarray, encoder: LoadedEncoder, *,
                 search: str = "auto", folder: Path | None = None, build_seconds: float = 0.0):
        import bm25s

        self.passages, self.embeddings, self.encoder, self.folder = passages, embeddings, encoder, folder
        self.build_seconds = build_seconds
        self.sparse = bm25s.BM25()
        self.sparse.index(bm25s.tokenize([_indexed_text(p) for p in passages], stopwords="en",
                                         show_progress=False), show_progress=False)
        self.kind = _search_kind(search, len(passages))
        self.graph = _hnsw(embeddings) if self.kind == "faiss" else None

    def describe(self) -> dict:
        return {"passages": len(self.passages), "encoder": self.encoder.name, "search": self.kind,
                "index_folder": str(self.folder) if self.folder else None}

    def dense(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, cosine similarities) of the k nearest passages of each query, best first."""
        k = min(k, len(self.passages))
        if self.graph is not None:
            similarities, indices = self.graph.search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return indices, similarities
        scores = queries @ self.embeddings.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1]
        indices = np.take_along_axis(top, order, 1)
        return indices, np.take_along_axis(scores, indices, 1)

    def sparse_ranks(self, queries: list[str], k: int) -> list[list[int]]:
        """The passages BM25 ranks first for each query, best first (passages sharing no word are left out)."""
        import bm25s

        tokens = bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
        indices, scores = self.sparse.retrieve(tokens, k=min(k, len(self.passages)), show_progress=False)
        return [[int(i) for i, s in zip(row, row_scores) if s > 0] for row, row_scores in zip(indices, scores)]

    def search(self, queries: list[str], k: int = 5) -> list[list[Hit]]:
        return self.search_vectors(queries, self.embed_queries(queries), k)

    def embed_queries(self, queries: list[str]) -> np.ndarray:
        vectors = self.encoder.encode(queries)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)

    def search_vectors(self, queries: list[str], vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """The k best passages of each query, given the queries' unit-length embeddings."""
        dense_indices, _ = self.dense(vectors, CANDIDATES)
        results = []
        for query, vector, dense_row, sparse_row in zip(queries, vectors, dense_indices,
                                                        self.sparse_ranks(queries, CANDIDATES)):
            fused = reciprocal_rank_fusion([[int(i) for i in dense_row if i >= 0], sparse_row], [1.0, SPARSE_WEIGHT])
            best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
            results.append([Hit(self.passages[i], fused[i], float(self.embeddings[i] @ vector)) for i in best])
        return results


def reciprocal_rank_fusion(rankings: list[list[int]], weights: list[float], k: int = RRF_K) -> dict[int, float]:
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def open_index(path: str | Path, *, encoder: str = DEFAULT_ENCODER, device: str = "cpu",
               search: str = "auto", loaded: LoadedEncoder | None = None) -> KnowledgeIndex:
    """The index of the knowledge base at `path`: from the cache when its files are unchanged, else built."""
    if search not in SEARCHES:
        raise UserError(f"unknown search '{search}'", fix="choose one of: " + ", ".join(SEARCHES))
    passages = read_knowledge(path)  # checks the files before any model loads
    loaded = loaded or load_encoder(encoder, device=device)
    key = hashlib.sha256(json.dumps([INDEX_VERSION, content_hash(path), loaded.fingerprint, MAX_PASSAGE_CHARS])
                         .encode()).hexdigest()[:20]
    folder = cache_dir("knowledge", key)
    vectors_file = folder / "embeddings.npy"
    if vectors_file.is_file():
        embeddings = np.load(vectors_file, allow_pickle=False)
        return KnowledgeIndex(passages, embeddings, loaded, search=search, folder=folder)
    started = time.perf_counter()
    embeddings = embed_passages(loaded, passages)
    seconds = time.perf_counter() - started
    write_jsonl(folder / "passages.jsonl", (passage.as_dict() for passage in passages))
    write_json(folder / "index.json", {"source": str(Path(path).expanduser().resolve()), "passages": len(passages),
                                       "encoder": loaded.name, "embed_seconds": round(seconds, 2)})
    write_atomic(vectors_file, _npy_bytes(embeddings))  # written last: its presence means the folder is whole
    return KnowledgeIndex(passages, embeddings, loaded, search=search, folder=folder, build_seconds=seconds)


def embed_passages(encoder: LoadedEncoder, passages: list[Passage]) -> np.ndarray:
    """Unit-length embeddings of the passages (title and text), [N, dim] float32."""
    vectors = encoder.encode([_indexed_text(passage) for passage in passages])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)


def _indexed_text(passage: Passage) -> str:
    return f"{passage.title}. {passage.text}" if passage.title else passage.text


def _search_kind(search: str, size: int) -> str:
    if search == "auto":
        from importlib.util import find_spec
        return "faiss" if size >= FAISS_ABOVE and find_spec("faiss") is not None else "exact"
    if search == "faiss":
        from importlib.util import find_spec
        if find_spec("faiss") is None:
            raise UserError("--search faiss needs faiss-cpu", fix="pip install faiss-cpu, or use --search exact")
    return search


def _hnsw(embeddings: np.ndarray):
    import faiss

    graph = faiss.IndexHNSWFlat(embeddings.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efSearch = 128  # recall close to exact at CANDIDATES neighbours
    graph.add(np.ascontiguousarray(embeddings, dtype=np.float32))
    return graph


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
