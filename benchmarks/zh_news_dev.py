"""news-sentiment-zh, k-shot heads on the upstream dev split (999 titles): how `head`'s options were chosen.

    python benchmarks/zh_news_dev.py [--encoder use-multilingual] [--k 16] [--seeds 13,21,42,87,100]

For every seed it samples the k-shot split as `promptlab fewshot` does, runs `head --encoder E` through
promptlab.methods.run_method with the options compared (select=dev, select=cv, pseudo_labels=N) and scores
the upstream dev titles, never the test ones. It also tries label-shift corrections of the select=dev head's
probabilities, p(y|x) * prior(y) / (1/3) renormalised (the k-shot sample is balanced), with the prior
estimated from the unlabelled rest of the train split by EM (Saerens, Latinne and Decaestecker, 2002) or by
black-box shift estimation from the k-shot dev confusion matrix (BBSE, Lipton et al., 2018), and with that
rest's true label shares (an oracle no run could have). Prints one line per variant: macro-F1 mean and per seed.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from promptlab.backends.features import example_text
from promptlab.backends.sentence_encoders import load_encoder
from promptlab.catalog.catalog import Catalog
from promptlab.data.sampling import sample_kshot
from promptlab.kinds import kind_of
from promptlab.methods import run_method
from promptlab.methods.logistic_head import fit_head, head_probabilities
from promptlab.metrics.text import classification_metrics

TASK = "news-sentiment-zh"
VARIANTS = {"select=dev (the default)": {},
            "select=cv": {"select": "cv"},
            **{f"select=cv, pseudo_labels={n}": {"select": "cv", "pseudo_labels": n} for n in (50, 100, 200, 400)}}


def em_prior(probabilities: np.ndarray, train_prior: np.ndarray, steps: int = 1000) -> np.ndarray:
    """Saerens et al.'s EM: the label prior of unlabelled rows under a classifier trained at `train_prior`."""
    prior = train_prior.copy()
    for _ in range(steps):
        adjusted = probabilities * prior / train_prior
        new = (adjusted / adjusted.sum(1, keepdims=True)).mean(0)
        if np.abs(new - prior).max() < 1e-9:
            return new
        prior = new
    return prior


def bbse_prior(dev_probabilities: np.ndarray, dev_gold: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Black-box shift estimation: solve confusion(predicted, gold) w = predicted shares, prior = w * dev prior."""
    n = probabilities.shape[1]
    confusion = np.zeros((n, n))
    np.add.at(confusion, (dev_probabilities.argmax(1), dev_gold), 1 / len(dev_gold))
    shares = np.bincount(probabilities.argmax(1), minlength=n) / len(probabilities)
    weights = np.clip(np.linalg.lstsq(confusion, shares, rcond=None)[0], 0, None)
    prior = weights * np.bincount(dev_gold, minlength=n) / len(dev_gold)
    return prior / prior.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="use-multilingual")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seeds", default="13,21,42,87,100")
    args = parser.parse_args()
    torch.set_num_threads(1)
    catalog = Catalog.from_options(())
    task = catalog.task(TASK)
    kind = kind_of(task)
    setup = kind.setup(catalog, task, None, None, "head")
    pool, test = kind.check_data(task, setup, args.k, [], None)
    dev = kind.labelled(kind.examples(task, "dev"), task.path)
    labels = task.labels
    encoder = load_encoder(args.encoder, device="cpu")
    rows = lambda examples: encoder.encode_frozen([example_text(setup.template, e) for e in examples])  # noqa: E731
    scores: dict[str, list[float]] = {}

    def record(name: str, predicted) -> None:
        names = [labels[i] for i in predicted]
        scores.setdefault(name, []).append(
            classification_metrics([e["label"] for e in dev], names, labels)["macro_f1"])

    dev_x = rows(dev)
    for seed in map(int, args.seeds.split(",")):
        for name, options in VARIANTS.items():
            result = run_method("head", setup=setup, loaded=None, train_pool=pool, test_examples=dev, k=args.k,
                                seed=seed, options={"encoder": args.encoder, **options}, device="cpu")
            scores.setdefault(name, []).append(result["macro_f1"])
        split = sample_kshot(pool, labels, args.k, seed)
        sampled = set(split.ids["train"]) | set(split.ids["dev"])
        rest = [e for e in pool if e["id"] not in sampled]
        train_y = [labels.index(e["label"]) for e in split.train]
        sample_dev_y = np.array([labels.index(e["label"]) for e in split.dev])
        fitted = fit_head(rows(split.train), train_y, rows(split.dev), sample_dev_y, [0.01, 0.1, 1.0, 10.0])
        probabilities = head_probabilities(fitted, dev_x, len(labels))
        rest_probabilities = head_probabilities(fitted, rows(rest), len(labels))
        uniform = np.full(len(labels), 1 / len(labels))
        priors = {"EM prior from the unlabelled rest": em_prior(rest_probabilities, uniform),
                  "BBSE prior": bbse_prior(head_probabilities(fitted, rows(split.dev), len(labels)), sample_dev_y,
                                           rest_probabilities),
                  "the rest's true prior (oracle)": np.bincount([labels.index(e["label"]) for e in rest],
                                                                minlength=len(labels)) / len(rest)}
        for name, prior in priors.items():
            record(f"select=dev, then {name}", (probabilities * prior / uniform).argmax(1))
        print(f"seed {seed} done", flush=True)
    for name, values in scores.items():
        print(f"{name:55s} {statistics.mean(values):.4f}  ({' / '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
