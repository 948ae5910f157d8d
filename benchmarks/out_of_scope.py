"""Out-of-scope rejection on Banking77: in-scope accuracy against the share of unseen intents rejected.

    python benchmarks/out_of_scope.py [--method head] [--options '{"encoder": "minilm-l6"}'] [--k 10]
                                      [--seed 13] [--output docs/out_of_scope.json] [--plot docs/out_of_scope.png]

Every third intent of Banking77 (26 of 77, in label order) is held out: the method trains on the
k-shot sample of the other 51 and never sees the held-out ones. The test messages of the 51 are
in scope; those of the 26 play the customer asking for something the router does not know. For
each threshold P of `--reject-below`, the script reports the share of out-of-scope messages
answered `out_of_scope` (the higher the better) against the in-scope accuracy, where an in-scope
message rejected counts as wrong (the cost of the threshold).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import numpy as np

THRESHOLDS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def curve(probabilities: np.ndarray, gold: list[int], in_scope: np.ndarray) -> list[dict]:
    """One row per threshold: out-of-scope rejected, in-scope accuracy and in-scope rejected."""
    top, predicted = probabilities.max(1), probabilities.argmax(1)
    correct = predicted == np.asarray(gold)
    rows = []
    for threshold in THRESHOLDS:
        accepted = top >= threshold
        rows.append({"reject_below": threshold,
                     "out_of_scope_rejected": float((~accepted[~in_scope]).mean()),
                     "in_scope_accuracy": float((correct & accepted)[in_scope].mean()),
                     "in_scope_rejected": float((~accepted[in_scope]).mean())})
    return rows


@click.command()
@click.option("--method", default="head", show_default=True)
@click.option("--options", "options_json", default='{"encoder": "minilm-l6"}', show_default=True)
@click.option("--k", default=10, show_default=True)
@click.option("--seed", default=13, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None)
@click.option("--plot", type=click.Path(dir_okay=False), default=None)
def main(method, options_json, k, seed, output, plot):
    from promptlab.catalog.catalog import Catalog, Setup
    from promptlab.kinds import task_examples
    from promptlab.methods import REGISTRY, method_options
    from promptlab.methods.context import MethodContext
    from promptlab.backends.models import load_model
    from promptlab.data.sampling import sample_kshot

    full = Setup.load(Catalog.from_options(()), "banking77", "t1")
    held_out = set(full.task.labels[::3])
    seen = [label for label in full.task.labels if label not in held_out]
    setup = dataclasses.replace(full, task=dataclasses.replace(full.task, labels=seen))
    pool = [example for example in task_examples(full.task, "train") if example["label"] in seen]
    test = task_examples(full.task, "test")
    options = method_options(method, json.loads(options_json))
    loaded = None if method in ("setfit", "head") and getattr(options, "encoder", None) else load_model("smollm2-135m")
    split = sample_kshot(pool, seen, k, seed)
    outcome = REGISTRY[method].run(MethodContext(setup, loaded, split, test, seed, options, method=method,
                                                 device="cpu"))
    in_scope = np.array([example["label"] in seen for example in test])
    gold = [seen.index(example["label"]) if example["label"] in seen else -1 for example in test]
    rows = curve(np.array(outcome.probabilities), gold, in_scope)
    click.echo(f"Banking77, {len(seen)} intents seen, {len(held_out)} held out; {method} {options_json}, k={k}, "
               f"seed {seed}; {int(in_scope.sum())} in-scope and {int((~in_scope).sum())} out-of-scope messages")
    click.echo(f"{'reject below':>12}{'OOS rejected':>14}{'in-scope acc':>14}{'in-scope rejected':>19}")
    for row in rows:
        click.echo(f"{row['reject_below']:>12.2f}{row['out_of_scope_rejected']:>14.3f}{row['in_scope_accuracy']:>14.3f}"
                   f"{row['in_scope_rejected']:>19.3f}")
    if output:
        Path(output).write_text(json.dumps({"method": method, "options": json.loads(options_json), "k": k,
                                            "seed": seed, "held_out": sorted(held_out), "curve": rows}, indent=2)
                                + "\n")
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        figure, axes = plt.subplots(figsize=(5, 4))
        axes.plot([row["out_of_scope_rejected"] for row in rows], [row["in_scope_accuracy"] for row in rows], "o-")
        for row in rows[1::2]:
            axes.annotate(f"{row['reject_below']:g}", (row["out_of_scope_rejected"], row["in_scope_accuracy"]),
                          textcoords="offset points", xytext=(4, 4), fontsize=8)
        axes.set_xlabel("unseen-intent messages rejected")
        axes.set_ylabel("in-scope accuracy (rejections count as wrong)")
        axes.set_title(f"Banking77, 26 intents unseen: {method}, k={k}")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(plot, dpi=120)


if __name__ == "__main__":
    main()
