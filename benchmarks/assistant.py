"""The assistant on Banking77: known intents answered by template, unseen ones by the knowledge base.

    python benchmarks/assistant.py [--k 10] [--seed 13] [--output docs/assistant.json] [--plot docs/assistant.png]
                                   [--speed 10000,100000]

As benchmarks/out_of_scope.py does, every third intent (26 of 77) is held out: the router (`head` on
minilm-l6, k=10 messages per known intent) never sees them, so their messages are new questions.
The answers are the shipped answers/banking77/default.yaml, the knowledge base the same texts
(answers/banking77/knowledge.jsonl: one passage per intent, the right passage is the message's
intent's). Over a grid of (intent threshold, retrieval threshold), on test:

- known right: known-intent messages that get their intent's answer (the template; for the handoff
  intents a handoff, for the retrieve intent its passage first);
- unseen: recall@1/@5 of the right passage (independent of the thresholds), the share answered
  right by retrieval (right passage first), the share answered wrong (a template or wrong passage);
- handed off: the share of all messages handed to a person.

The defaults are chosen on *dev*: among the grid points that keep at least 80% of the known-intent
messages on their right answer (the service level), the one with the most right minus wrong answers
over all messages (a wrong answer costs what a right one gains; a handoff costs nothing). With
--speed, retrieval queries/s and index build time on synthetic bases of those sizes (Banking77 and
CLINC150 messages joined in threes).
"""
from __future__ import annotations

import dataclasses
import json
import random
import time
from pathlib import Path

import click
import numpy as np

INTENT_THRESHOLDS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
RETRIEVAL_THRESHOLDS = [0.0, 0.2, 0.3, 0.35, 0.4, 0.5, 0.6]
KNOWN_FLOOR = 0.8  # the share of known-intent messages the defaults must keep on their intent's answer
KNOWLEDGE = Path(__file__).resolve().parent.parent / "answers" / "banking77" / "knowledge.jsonl"


class SearchedOnce:
    """An index whose searches were run once for every message (the grid only replays the decisions)."""

    def __init__(self, index, texts: list[str], k: int):
        self.index = index
        self.hits = dict(zip(texts, index.search(texts, k=k)))

    def search(self, queries, k):
        return [self.hits[query][:k] for query in queries]

    def describe(self):
        return self.index.describe()


def outcomes(assistant, rows, probabilities, known: np.ndarray) -> dict:
    gold = [row["label"] for row in rows]
    replies = assistant.reply(rows, probabilities)
    first = [reply["passages"][0]["id"] if reply["passages"] else None for reply in replies]
    path = np.array([reply["path"] for reply in replies])
    expected = np.array([assistant.answers.path_for(label) for label in gold])
    intent_right = np.array([reply["intent"] == label for reply, label in zip(replies, gold)])
    passage_right = np.array([passage == label for passage, label in zip(first, gold)])
    known_right = (path == expected) & np.where(expected == "retrieval", passage_right, intent_right)
    retrieved_right = (path == "retrieval") & passage_right
    answered = path != "handoff"
    return {"known_right": float(known_right[known].mean()),
            "known_template": float(((path == "template") & intent_right)[known].mean()),
            "known_handoff": float((path == "handoff")[known].mean()),
            "unseen_retrieved_right": float(retrieved_right[~known].mean()),
            "unseen_wrong": float((answered & ~retrieved_right)[~known].mean()),
            "unseen_handoff": float((path == "handoff")[~known].mean()),
            "handoff": float((path == "handoff").mean()),
            "right_minus_wrong": float(((known_right | retrieved_right).sum()
                                        - (answered & ~(known_right | retrieved_right)).sum()) / len(rows))}


def grid(answers, searched, rows, probabilities, known):
    from promptlab.apply.assist import Assistant

    return [{"intent_threshold": t, "retrieval_threshold": r,
             **outcomes(Assistant(answers, searched, t, r, top_passages=5), rows, probabilities, known)}
            for t in INTENT_THRESHOLDS for r in RETRIEVAL_THRESHOLDS]


def choose(rows: list[dict]) -> dict:
    """The grid point with the most right minus wrong answers among those that keep KNOWN_FLOOR of the
    known-intent messages on their right answer (all points, if none does)."""
    kept = [row for row in rows if row["known_right"] >= KNOWN_FLOOR] or rows
    best = max(kept, key=lambda row: (row["right_minus_wrong"], -row["handoff"]))
    return {"intent_threshold": best["intent_threshold"], "retrieval_threshold": best["retrieval_threshold"],
            "known_floor": KNOWN_FLOOR}


def recall(searched, rows, known) -> dict:
    unseen = [row for row, is_known in zip(rows, known) if not is_known]
    ranks = [[hit.passage.id for hit in searched.hits[row["text"]]] for row in unseen]
    return {f"recall@{k}": sum(row["label"] in ids[:k] for row, ids in zip(unseen, ranks)) / len(unseen)
            for k in (1, 5)}


def speed(sizes: list[int], encoder, seed: int, embed_up_to: int) -> list[dict]:
    """Index build time and queries/s on synthetic bases (messages joined in threes), in wall-clock and in CPU
    seconds (summed over threads: on a shared machine the steadier number). `embed_up_to` passages are
    embedded and their vectors tiled (plus noise) to each size: the embedding time of a base is that
    measured rate times its size, marked as estimated; BM25, the FAISS graph and search run at full size.
    FAISS is measured where `auto` would use it (from FAISS_ABOVE passages)."""
    from promptlab.apply.knowledge_index import FAISS_ABOVE, KnowledgeIndex, _hnsw
    from promptlab.apply.knowledge_index import embed_passages
    from promptlab.catalog.catalog import Catalog
    from promptlab.data.knowledge import Passage
    from promptlab.kinds import task_examples

    catalog = Catalog.from_options(())
    texts = [e["text"] for task in ("banking77", "clinc150") for split in ("train", "dev", "test")
             for e in task_examples(catalog.task(task), split)]
    rng = random.Random(seed)
    queries = rng.sample(texts, 200)
    pool = [Passage(str(i), "", " ".join(rng.sample(texts, 3)), str(i), 0, 0) for i in range(max(sizes))]
    (embed_wall, embed_cpu), sample = timed(lambda: embed_passages(encoder, pool[:embed_up_to]))
    (encode_wall, encode_cpu), vectors = timed(lambda: encoder.encode(queries))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = []
    for size in sizes:
        noise = np.random.default_rng(seed).normal(0, 0.02, (size, sample.shape[1])).astype(np.float32)
        embeddings = np.resize(sample, (size, sample.shape[1])) + noise
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        (bm25_wall, bm25_cpu), index = timed(lambda: KnowledgeIndex(pool[:size], embeddings, encoder, search="exact"))
        for search in ("exact", "faiss") if size >= FAISS_ABOVE else ("exact",):
            graph_wall = graph_cpu = 0.0
            if search == "faiss":
                (graph_wall, graph_cpu), index.graph = timed(lambda: _hnsw(embeddings))
            index.search_vectors(queries[:20], vectors[:20], k=5)  # warm
            (search_wall, search_cpu), _ = timed(lambda: index.search_vectors(queries, vectors, k=5))
            row = {"passages": size, "search": search, "embedded": embed_up_to,
                   "embed_passages_per_cpu_second": round(embed_up_to / embed_cpu, 1),
                   "embed_cpu_seconds_estimated": round(embed_cpu * size / embed_up_to, 1),
                   "embed_wall_seconds_estimated": round(embed_wall * size / embed_up_to, 1),
                   "bm25_cpu_seconds": round(bm25_cpu, 2), "bm25_wall_seconds": round(bm25_wall, 2),
                   "faiss_graph_cpu_seconds": round(graph_cpu, 2), "faiss_graph_wall_seconds": round(graph_wall, 2),
                   "queries_per_cpu_second": round(len(queries) / (encode_cpu + search_cpu), 1),
                   "queries_per_wall_second": round(len(queries) / (encode_wall + search_wall), 1),
                   "search_only_queries_per_cpu_second": round(len(queries) / search_cpu, 1),
                   "search_only_queries_per_wall_second": round(len(queries) / search_wall, 1)}
            click.echo(json.dumps(row))
            rows.append(row)
    return rows


def timed(work):
    """((wall seconds, CPU seconds of this process), work())."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return (time.perf_counter() - wall, time.process_time() - cpu), result


@click.command()
@click.option("--k", default=10, show_default=True)
@click.option("--seed", default=13, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None)
@click.option("--plot", type=click.Path(dir_okay=False), default=None)
@click.option("--speed", "speed_sizes", default="", help="Comma-separated base sizes for the speed rows.")
@click.option("--speed-only", is_flag=True, help="Only the speed rows (with --speed).")
@click.option("--embed-up-to", default=1000, show_default=True, help="Speed: passages really embedded.")
def main(k, seed, output, plot, speed_sizes, speed_only, embed_up_to):
    from promptlab.apply.assist import DEFAULT_INTENT_THRESHOLD, DEFAULT_RETRIEVAL_THRESHOLD
    from promptlab.apply.knowledge_index import open_index
    from promptlab.backends.sentence_encoders import load_encoder
    from promptlab.catalog.catalog import Catalog, Setup
    from promptlab.data.sampling import sample_kshot
    from promptlab.methods import REGISTRY, method_options
    from promptlab.methods.context import MethodContext
    from promptlab.kinds import task_examples

    if speed_only:
        encoder = load_encoder("minilm-l6", device="cpu")
        result = {"speed": speed([int(size) for size in speed_sizes.split(",")], encoder, seed, embed_up_to)}
        if output:
            Path(output).write_text(json.dumps(result, indent=2) + "\n")
        return
    catalog = Catalog.from_options(())
    full = Setup.load(catalog, "banking77", "t1")
    answers = catalog.answers(full.task, "default")
    held_out = set(full.task.labels[::3])
    seen = [label for label in full.task.labels if label not in held_out]
    setup = dataclasses.replace(full, task=dataclasses.replace(full.task, labels=seen))
    pool = [example for example in task_examples(full.task, "train") if example["label"] in seen]
    dev, test = task_examples(full.task, "dev"), task_examples(full.task, "test")
    options = method_options("head", {"encoder": "minilm-l6"})
    started = time.perf_counter()
    outcome = REGISTRY["head"].run(MethodContext(setup, None, sample_kshot(pool, seen, k, seed), dev + test, seed,
                                                 options, device="cpu"))
    train_seconds = time.perf_counter() - started
    probabilities = [dict(zip(seen, row)) for row in np.asarray(outcome.probabilities).tolist()]
    encoder = load_encoder("minilm-l6", device="cpu")
    index = open_index(KNOWLEDGE, loaded=encoder)
    started = time.perf_counter()
    searched = SearchedOnce(index, sorted({row["text"] for row in dev + test}), k=5)
    search_seconds = time.perf_counter() - started
    result = {"k": k, "seed": seed, "router": "head on minilm-l6", "held_out": sorted(held_out),
              "train_seconds": round(train_seconds, 1),
              "search_queries_per_second": round(len(searched.hits) / search_seconds, 1)}
    for name, rows, probs in (("dev", dev, probabilities[:len(dev)]), ("test", test, probabilities[len(dev):])):
        known = np.array([row["label"] in seen for row in rows])
        result[name] = {"known_messages": int(known.sum()), "unseen_messages": int((~known).sum()),
                        **recall(searched, rows, known), "grid": grid(answers, searched, rows, probs, known)}
    result["chosen_on_dev"] = choose(result["dev"]["grid"])
    result["defaults"] = {"intent_threshold": DEFAULT_INTENT_THRESHOLD,
                          "retrieval_threshold": DEFAULT_RETRIEVAL_THRESHOLD}
    at_defaults = [row for row in result["test"]["grid"] if row["intent_threshold"] == DEFAULT_INTENT_THRESHOLD
                   and row["retrieval_threshold"] == DEFAULT_RETRIEVAL_THRESHOLD]
    result["test_at_defaults"] = at_defaults[0] if at_defaults else None
    click.echo(f"Banking77, {len(seen)} intents known, {len(held_out)} unseen; router head minilm-l6 k={k} seed "
               f"{seed}; test recall@1 {result['test']['recall@1']:.3f} recall@5 {result['test']['recall@5']:.3f}")
    click.echo(f"chosen on dev: {result['chosen_on_dev']}; defaults {result['defaults']}")
    click.echo(f"test at defaults: {json.dumps(result['test_at_defaults'])}")
    if speed_sizes:
        result["speed"] = speed([int(size) for size in speed_sizes.split(",")], encoder, seed, embed_up_to)
    if output:
        Path(output).write_text(json.dumps(result, indent=2) + "\n")
    if plot:
        draw(result, plot)


def draw(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["test"]["grid"]
    retrieval = result["defaults"]["retrieval_threshold"]
    intent = result["defaults"]["intent_threshold"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    along = [row for row in rows if row["retrieval_threshold"] == retrieval]
    for key, name in (("known_right", "known: right answer"), ("known_template", "known: right template"),
                      ("unseen_retrieved_right", "unseen: right passage answered"),
                      ("unseen_wrong", "unseen: answered wrong"), ("handoff", "all: handed off")):
        left.plot([row["intent_threshold"] for row in along], [row[key] for row in along], "o-", label=name)
        right.plot(RETRIEVAL_THRESHOLDS, [row[key] for row in rows if row["intent_threshold"] == intent], "o-",
                   label=name)
    left.axvline(intent, color="grey", linestyle="--")
    right.axvline(retrieval, color="grey", linestyle="--")
    left.set_xlabel(f"intent threshold (retrieval threshold {retrieval:g})")
    right.set_xlabel(f"retrieval threshold (intent threshold {intent:g})")
    for axes in (left, right):
        axes.set_ylabel("share of messages")
        axes.grid(alpha=0.3)
    left.legend(fontsize=8)
    figure.suptitle(f"Banking77 assistant, 26 intents unseen, router head k={result['k']} (test; dashed: defaults)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
