"""Zero-shot accuracy of every calibration side by side, from one scoring pass per task.

    python benchmarks/calibrations.py [--tasks sentiment,cr] [--limit 200] [--model smollm2-135m]
                                      [--dtype float32] [--output FILE.json]

The label words' log-probabilities do not depend on the calibration, so each task's examples are
scored once (template t1, the task's default verbalizer) and `none`, `contextual`, `pmi` and
`batch` are applied to the same scores; the contextual and PMI baselines cost 3 and 1 prompts.
Each calibration gives exactly what `promptlab zeroshot --calibrate C` gives on the same examples.

`--limit N` takes the same fixed stratified sample of a test split as an eval suite's `limit`
(promptlab.evaluation.units.text.load_task_data), so the numbers line up with the suites' zero-shot rows;
`--first N` takes the first N test examples instead, as `promptlab zeroshot --limit N` does.
"""
from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from promptlab.backends import make_backend
from promptlab.backends.calibration import CALIBRATIONS
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.metrics.text import classification_metrics
from promptlab.backends.models import load_model
from promptlab.runtime.outputs import write_json
from promptlab.methods.pipeline import render_all
from promptlab.evaluation.units.text import load_task_data
from promptlab.backends.scoring import LabelScorer
from promptlab.kinds import task_examples

TASKS = "sentiment,cr,bbc,snips,tweets,vitaminc"


def calibration_accuracies(setup: Setup, examples: list[dict], backend) -> dict:
    """{calibration: {accuracy, macro_f1}} for every calibration, the examples scored once."""
    prompts = render_all(setup.template, examples)
    gold = [example["label"] for example in examples]
    scorers = {name: LabelScorer(backend, setup.template, setup.verbalizer, calibrate=name) for name in CALIBRATIONS}
    with torch.inference_mode():
        words = scorers["none"].word_scores(prompts)
        results = {}
        for name, scorer in scorers.items():
            logprobs = scorer.calibrate_set(scorer.labels_from_words(words))
            predicted = [setup.task.labels[i] for i in logprobs.argmax(-1).tolist()]
            metrics = classification_metrics(gold, predicted, setup.task.labels)
            results[name] = {"accuracy": round(metrics["accuracy"], 4), "macro_f1": round(metrics["macro_f1"], 4)}
    return results


@click.command()
@click.option("--tasks", default=TASKS, show_default=True)
@click.option("--limit", type=int, default=None, help="A stratified sample of N test examples (as a suite's limit).")
@click.option("--first", type=int, default=None, help="The first N test examples (as zeroshot --limit).")
@click.option("--model", default="smollm2-135m", show_default=True)
@click.option("--dtype", default="float32", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the rows as JSON.")
def main(tasks, limit, first, model, dtype, output):
    loaded = load_model(model, device="cpu", dtype=dtype)
    backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
    rows = []
    click.echo(f"{loaded.name}, {str(loaded.model.dtype).removeprefix('torch.')}, template t1, default verbalizer")
    click.echo("| task | n | " + " | ".join(CALIBRATIONS) + " | seconds |")
    click.echo("|---|---:|" + "---:|" * len(CALIBRATIONS) + "---:|")
    for task in tasks.split(","):
        setup = Setup.load(Catalog.from_options([]), task, "t1", None)
        examples = task_examples(setup.task, "test", limit=first) if first else \
            load_task_data(setup, limit, needs_train=False).test
        start = time.perf_counter()
        results = calibration_accuracies(setup, examples, backend)
        seconds = time.perf_counter() - start
        rows.append({"task": task, "n": len(examples), "model": loaded.name,
                     "dtype": str(loaded.model.dtype).removeprefix("torch."), "template": "t1",
                     "verbalizer": setup.verbalizer.name, "sample": "first" if first else "stratified",
                     "seconds": round(seconds, 1), "calibrations": results})
        click.echo(f"| {task} | {len(examples)} | "
                   + " | ".join(f"{results[name]['accuracy']:.3f}" for name in CALIBRATIONS) + f" | {seconds:.0f} |")
    if output:
        write_json(Path(output), rows)


if __name__ == "__main__":
    main()
