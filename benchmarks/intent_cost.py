"""Intents, accuracy against cost: frozen-encoder heads on Banking77 and CLINC150 at k = 1, 5, 10.

    python benchmarks/intent_cost.py banking77 --encoders mpnet-base,minilm-l6 --k 1,5,10 \
        --variants mpnet-base,mpnet-base+words,mpnet-base+minilm-l6 --output runs/intent_cost.jsonl
    python benchmarks/intent_cost.py banking77 --throughput mpnet-base,minilm-l6

Each variant is `ENCODER[+ENCODER...][+joined][+words][+cv][+pseudoN]`: one encoder is `head --encoder ENCODER` as
the few-shot command runs it (the same k-shot draws, the same logistic-regression head with C chosen on the
k-shot dev sample); `+words` adds each intent's verbalizer words as training rows of that intent (what
`setfit --option loss=label-words` gives its head); `+pseudoN` self-trains each head once on the train
split outside the draw (`--option pseudo_labels=N`; the whole pool is embedded once per encoder);
two encoders average their heads' probabilities, or with `+joined` feed one head their unit rows side by
side (`head --encoder ENCODER+ENCODER`); `+cv` chooses C by cross-validation over the k-shot train and dev
messages and fits the head on both (`--option select=cv`).
Rows come from the embeddings cache (benchmarks warm it once per encoder: every seed, k and variant
then costs only its head), so `fit_seconds` is the head alone; the encoder's share of training is
(k-shot train and dev messages) / its throughput, which `--throughput` measures on uncached test
messages. Accuracy is on the upstream test set; `dev_accuracy` on the upstream dev set, where the
variants were compared.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np

C_VALUES = [0.01, 0.1, 1.0, 10.0]
SEEDS = (13, 21, 42)


def load_sets(task: str):
    from promptlab.catalog.catalog import Catalog, Setup
    from promptlab.data.overlap import train_pool_without_test_texts
    from promptlab.kinds import task_examples
    setup = Setup.load(Catalog.from_options(()), task, "t1")
    test, dev = task_examples(setup.task, "test"), task_examples(setup.task, "dev")
    pool = train_pool_without_test_texts(task_examples(setup.task, "train"), test, where=setup.task.path)
    return setup, pool, dev, test


@click.command()
@click.argument("task")
@click.option("--k", "ks", default="1,5,10", show_default=True)
@click.option("--seeds", default="13,21,42", show_default=True)
@click.option("--variants", default="mpnet-base", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="JSONL rows appended here")
@click.option("--throughput", default=None, help="encoders whose messages/s to measure instead (comma-separated)")
@click.option("--float32", is_flag=True, help="encoders in float32 (default: bfloat16 where the CPU runs it natively)")
@click.option("--dev-only", is_flag=True, help="the upstream dev set only (for comparing variants)")
def main(task, ks, seeds, variants, output, throughput, float32, dev_only):
    from promptlab.backends.features import example_text
    setup, pool, dev, test = load_sets(task)

    def texts(examples):
        return [example_text(setup.template, example) for example in examples]

    if throughput:
        for name in throughput.split(","):
            click.echo(json.dumps({"task": task, "encoder": name, **measure_throughput(name, texts(test[:256]))}))
        return
    labels = setup.task.labels
    words = [[word.strip() for word in setup.verbalizer.words[label]] for label in labels]
    word_texts = [word for label_words in words for word in label_words]
    word_gold = [index for index, label_words in enumerate(words) for _ in label_words]
    parsed = [variant.split("+") for variant in variants.split(",")]
    pseudo = {variant: next((int(part[len("pseudo"):]) for part in parts if part.startswith("pseudo")), 0)
              for variant, parts in zip(variants.split(","), parsed)}
    parsed = [[part for part in parts if not part.startswith("pseudo")] for parts in parsed]
    joined = {variant: "joined" in parts for variant, parts in zip(variants.split(","), parsed)}
    cv = {variant: "cv" in parts for variant, parts in zip(variants.split(","), parsed)}
    parsed = [[part for part in parts if part not in ("joined", "cv")] for parts in parsed]
    from promptlab.data.sampling import sample_kshot

    encoders = sorted({part for parts in parsed for part in parts if part != "words"})
    draws = {(k, seed): sample_kshot(pool, labels, k, seed)
             for k in [int(value) for value in ks.split(",")] for seed in [int(value) for value in seeds.split(",")]}
    evaluated = {"dev": (texts(dev), gold(dev, labels))}
    if not dev_only:
        evaluated["test"] = (texts(test), gold(test, labels))
    needed = [text for split in draws.values() for text in texts(split.train + split.dev)]
    pool_texts = texts(pool) if any(pseudo.values()) else []
    rows_of = embedded(encoders, needed + [text for batch, _ in evaluated.values() for text in batch] + word_texts
                       + pool_texts, float32)
    for variant, parts in zip(variants.split(","), parsed):
        names = [name for name in parts if name != "words"]
        if joined[variant] and "+".join(names) not in rows_of:
            rows_of["+".join(names)] = joined_rows(rows_of, names)
    for (k, seed), split in draws.items():
        for variant, parts in zip(variants.split(","), parsed):
            started = time.perf_counter()
            extra = (word_texts, word_gold) if "words" in parts else ([], [])
            sampled = set(split.ids["train"]) | set(split.ids["dev"])  # as promptlab.methods.unlabelled_rest
            unlabelled = [text for example, text in zip(pool, pool_texts) if str(example["id"]) not in sampled]
            names = [name for name in parts if name != "words"]
            heads = [(name, fit(rows_of[name], texts(split.train) + extra[0], gold(split.train, labels) + extra[1],
                                texts(split.dev), gold(split.dev, labels), unlabelled, pseudo[variant],
                                cv=cv[variant], seed=seed))
                     for name in (["+".join(names)] if joined[variant] else names)]
            fit_seconds = time.perf_counter() - started
            accuracy = {name: float((predict(heads, rows_of, batch, len(labels)) == np.array(answers)).mean())
                        for name, (batch, answers) in evaluated.items()}
            row = {"task": task, "k": k, "seed": seed, "variant": variant, "accuracy": accuracy.get("test"),
                   "dev_accuracy": accuracy["dev"], "fit_seconds": round(fit_seconds, 2),
                   "dtype": "float32" if float32 else "auto",
                   "kshot_messages": len(split.train) + len(split.dev), "c": [head.c for _, head in heads]}
            click.echo(json.dumps(row))
            if output:
                with Path(output).open("a") as stream:
                    stream.write(json.dumps(row) + "\n")


def gold(examples, labels) -> list[int]:
    return [labels.index(example["label"]) for example in examples]


def embedded(encoders, texts, float32: bool) -> dict:
    """Per encoder, text -> cached row (encoding only what the cache lacks)."""
    from promptlab.backends.sentence_encoders import load_encoder
    unique = list(dict.fromkeys(texts))
    rows_of = {}
    for name in encoders:
        encoder = load_encoder(name, device="cpu", trainable=float32)  # trainable: loaded in float32
        rows_of[name] = dict(zip(unique, encoder.encode_frozen(unique)))
    return rows_of


def joined_rows(rows_of: dict, names: list[str]) -> dict:
    """text -> the encoders' rows joined as `--encoder A+B` joins them."""
    from promptlab.backends.joined_encoders import join_rows
    texts = list(rows_of[names[0]])
    matrix = join_rows([np.stack([rows_of[name][text] for text in texts]) for name in names])
    return dict(zip(texts, matrix))


def fit(rows: dict, train_texts, train_gold, dev_texts, dev_gold, unlabelled=(), pseudo_labels=0, *, cv=False,
        seed=0):
    """The head as `head` fits it: C chosen on dev (or, `cv`, by cross-validation over train and dev, fitted on
    both), then (pseudo_labels > 0) self-trained once on `unlabelled`."""
    from promptlab.methods.baselines import SELECTIONS
    from promptlab.methods.logistic_head import fit_head, fit_head_cv, self_trained
    train_x = np.stack([rows[text] for text in train_texts])
    dev_x = np.stack([rows[text] for text in dev_texts])
    if cv:
        train_x, train_gold = np.concatenate([train_x, dev_x]), list(train_gold) + list(dev_gold)
        fitted = fit_head_cv(train_x, train_gold, SELECTIONS["cv"], seed=seed)
    else:
        fitted = fit_head(train_x, train_gold, dev_x, dev_gold, C_VALUES)
    if not pseudo_labels or not unlabelled:
        return fitted
    return self_trained(fitted, train_x, train_gold, np.stack([rows[text] for text in unlabelled]), pseudo_labels)


def predict(heads, rows_of, texts, n_labels) -> np.ndarray:
    """The mean of the heads' probabilities (one head: its own), argmax."""
    from promptlab.methods.logistic_head import head_probabilities
    total = sum(head_probabilities(head, np.stack([rows_of[name][text] for text in texts]), n_labels)
                for name, head in heads)
    return total.argmax(1)


def measure_throughput(name: str, texts: list[str]) -> dict:
    """Messages per second through the encoder (uncached), after one warm-up batch."""
    import torch

    from promptlab.backends.sentence_encoders import load_encoder
    encoder = load_encoder(name, device="cpu")
    encoder.encode(texts[:16])
    started = time.perf_counter()
    encoder.encode(texts)
    seconds = time.perf_counter() - started
    return {"messages_per_second": round(len(texts) / seconds, 1), "messages": len(texts),
            "threads": torch.get_num_threads(), "dtype": str(encoder.model.dtype).removeprefix("torch.")}


if __name__ == "__main__":
    main()
