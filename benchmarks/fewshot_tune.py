"""Tune few-shot defaults: run methods with option overrides on a seeded, shuffled test subset.

    python benchmarks/fewshot_tune.py --method softprompt --options '{"lr": 0.03}' --seeds 13,21,42

The subset is a seeded shuffle of the test split, so it holds both labels even where the split is
stored ordered by label. Prints one JSON line per configuration.
"""
from __future__ import annotations

import json
import random
import statistics
import time

import click
import torch

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.backends import make_backend
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.methods import run_method
from promptlab.backends.models import load_model
from promptlab.methods.pipeline import classify, render_all
from promptlab.backends.scoring import LabelScorer
from promptlab.kinds import task_examples


@click.command()
@click.option("--task", default="sentiment")
@click.option("--template", default="t1")
@click.option("--verbalizer", default=None)
@click.option("--model", default=DEFAULT_MODEL)
@click.option("--method", "methods", multiple=True, default=["softprompt"])
@click.option("--options", "option_sets", multiple=True, default=["{}"], help="JSON overrides; repeatable.")
@click.option("--seeds", default="13,21,42")
@click.option("--k", default=16)
@click.option("--limit", default=500)
@click.option("--zero-shot/--no-zero-shot", default=True)
@click.option("--threads", default=None, type=int, help="torch threads (1 is faster on a busy machine).")
def main(task, template, verbalizer, model, methods, option_sets, seeds, k, limit, zero_shot, threads):
    if threads:
        torch.set_num_threads(threads)
    setup = Setup.load(Catalog.from_options(), task, template, verbalizer)
    pool = task_examples(setup.task, "train")
    test = task_examples(setup.task, "test")
    random.Random(0).shuffle(test)
    test = test[:limit]
    loaded = load_model(model, device="cpu")
    if zero_shot:
        scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device),
                             setup.template, setup.verbalizer, calibrate="contextual")
        result = classify(scorer, test, render_all(setup.template, test), setup.task.labels)
        print(json.dumps({"method": "zeroshot-contextual", "accuracy": result.metrics["accuracy"],
                          "seconds": round(result.seconds, 1)}), flush=True)
    for method in methods:
        for options in option_sets:
            overrides = json.loads(options)
            started = time.perf_counter()
            runs = [run_method(method, setup=setup, loaded=loaded, train_pool=pool, test_examples=test, k=k,
                               seed=int(seed), options=overrides) for seed in seeds.split(",")]
            accuracies = [run["accuracy"] for run in runs]
            print(json.dumps({"method": method, "options": overrides,
                              "accuracy_mean": round(statistics.mean(accuracies), 4),
                              "accuracy_std": round(statistics.pstdev(accuracies), 4), "per_seed": accuracies,
                              "dev": [run["dev_accuracy"] for run in runs],
                              "steps": [run["train_steps"] for run in runs],
                              "best_step": [run.get("best_step") for run in runs],
                              "dev_history": [run.get("dev_history") for run in runs],
                              "losses": [run.get("losses") for run in runs],
                              "seconds_per_step": [run.get("seconds_per_step") for run in runs],
                              "seconds": round(time.perf_counter() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
