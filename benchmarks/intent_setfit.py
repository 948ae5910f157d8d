"""Intents, setfit on a sentence encoder: accuracy on the upstream dev and test sets, and training seconds.

    python benchmarks/intent_setfit.py banking77 --seeds 13,21,42 \
        --option encoder=mpnet-base --option loss=label-words --output runs/intent_setfit.jsonl
    python benchmarks/intent_setfit.py banking77 --seeds 13 --dev-only --option encoder=mpnet-base ...

`promptlab fewshot --method setfit` as the product runs it (the same k-shot draws from the upstream train
split, the same training and head), scored on the upstream dev set (where variants are compared) and,
without --dev-only, the upstream test set. Each row has the seconds of the whole method (training the
encoder, encoding the k-shot sample, fitting the head, encoding the evaluated messages) and of the
encoder's training alone; `--probabilities DIR` keeps each seed's dev and test probabilities (.npy)
for comparing ensembles on dev.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import yaml


@click.command()
@click.argument("task")
@click.option("--k", default=10, show_default=True)
@click.option("--seeds", default="13,21,42", show_default=True)
@click.option("--option", "options", multiple=True, help="NAME=VALUE of setfit (YAML value); repeatable")
@click.option("--dev-only", is_flag=True, help="the upstream dev set only (for comparing variants)")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="JSONL rows appended here")
@click.option("--probabilities", type=click.Path(file_okay=False), default=None,
              help="folder for each seed's dev/test probabilities")
def main(task, k, seeds, options, dev_only, output, probabilities):
    import torch

    from intent_cost import load_sets
    from promptlab.data.sampling import sample_kshot
    from promptlab.methods.context import MethodContext
    from promptlab.methods.encoder_heads import SetFitOptions, run_setfit
    setup, pool, dev, test = load_sets(task)
    labels = setup.task.labels
    chosen = {name: yaml.safe_load(value) for name, value in (option.split("=", 1) for option in options)}
    evaluated = {"dev": dev} if dev_only else {"dev": dev, "test": test}
    everything = [example for examples in evaluated.values() for example in examples]
    for seed in [int(value) for value in seeds.split(",")]:
        context = MethodContext(setup=setup, loaded=None, split=sample_kshot(pool, labels, k, seed),
                                test_examples=everything, seed=seed, options=SetFitOptions(**chosen), device="cpu")
        started = time.perf_counter()
        outcome = run_setfit(context)
        seconds = time.perf_counter() - started
        row = {"task": task, "k": k, "seed": seed, "method": "setfit", "options": chosen,
               "threads": torch.get_num_threads(), "seconds": round(seconds, 1),
               "train_seconds": round(outcome.details["seconds_per_step"] * outcome.train_steps, 1),
               "steps": outcome.train_steps, "c": outcome.details["c"], "kshot_dev_accuracy": outcome.dev_accuracy}
        start = 0
        for name, examples in evaluated.items():
            predicted = np.asarray(outcome.predicted[start:start + len(examples)])
            gold = np.asarray([labels.index(example["label"]) for example in examples])
            row["dev_accuracy" if name == "dev" else "accuracy"] = round(float((predicted == gold).mean()), 4)
            if probabilities:
                Path(probabilities).mkdir(parents=True, exist_ok=True)
                np.save(Path(probabilities) / f"{task}-{seed}-{name}.npy",
                        np.asarray(outcome.probabilities[start:start + len(examples)], dtype=np.float32))
            start += len(examples)
        click.echo(json.dumps(row))
        if output:
            with Path(output).open("a") as stream:
                stream.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
