"""`promptlab zeroshot`: check every file and example first, then load the model and score."""
from __future__ import annotations

import json
import time

import click

from promptlab.runtime import distributed
from promptlab.methods.artefacts import load_trained
from promptlab.apply.registry import check_trained, open_classifier
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.metrics.text import classification_metrics, format_metrics
from promptlab.runtime.outputs import output_folder, write_json, write_jsonl
from promptlab.methods.pipeline import Classified, render_all, require_labels
from promptlab.runtime.progress import progress_bar
from promptlab.metrics.rejection import check_threshold, rejection_metrics


def run_zeroshot_command(*, task, template, verbalizer, model, calibrate, aggregate, data, split, limit,
                         batch_size, device, catalogs, output, as_json, trained=None, prompt=None, dtype=None,
                         reject_below=None) -> None:
    check_threshold(reject_below)
    if prompt:
        click.echo("note: --prompt is deprecated; it is --trained now, which takes any method's artefact", err=True)
        trained = trained or prompt
    saved = load_trained(trained) if trained else None
    setup = Setup.for_run(Catalog.from_options(catalogs), task, template, verbalizer, saved=saved)
    examples = setup.task.examples(split, data=data, limit=limit)
    require_labels(examples, data or setup.task.path)
    render_all(setup.template, examples)  # every template/data mistake surfaces before the model loads
    check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
    folder = output_folder(output) if output and distributed.is_main() else None  # one process writes
    opened = open_classifier(setup, saved, model=model, device=device, dtype=dtype, calibrate=calibrate,
                             aggregate=aggregate, batch_size=batch_size)
    started = time.perf_counter()
    with progress_bar(len(examples), "scoring", unit="ex") as bar:
        logprobs = opened.classifier.logprobs(examples, progress=bar.update)
    result = Classified(setup.task.labels, examples, logprobs, time.perf_counter() - started,
                        reject_threshold=reject_below)
    gold = [e["label"] for e in examples]
    result.metrics = classification_metrics(gold, result.predicted, setup.task.labels)
    if reject_below is not None:  # a rejection counts as a wrong answer
        result.metrics.update(reject_below=reject_below, **rejection_metrics(gold, result.predicted))
    summary = {**setup.describe(), **opened.describe(), "method": saved.method if saved else "zero-shot",
               "trained": str(saved.folder) if saved else None, "split": None if data else split, "data": data,
               "n": len(examples), "accuracy": result.metrics["accuracy"], "macro_f1": result.metrics["macro_f1"],
               **{key: result.metrics[key] for key in ("reject_below", "rejected", "accepted_accuracy")
                  if key in result.metrics},
               "seconds": round(result.seconds, 3), "processes": distributed.world(),
               "examples_per_second": round(len(examples) / max(result.seconds, 1e-9), 2)}
    click.echo(f"{setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} · "
               f"{opened.loaded.name} ({opened.loaded.kind}, {opened.loaded.device}, {opened.loaded.dtype}) · "
               f"calibrate {opened.calibrate or '-'}"
               + (f" · trained {saved.method} {saved.folder}" if saved else ""))
    click.echo(format_metrics(result.metrics))
    if reject_below is not None:
        accepted = result.metrics["accepted_accuracy"]
        click.echo(f"out_of_scope below {reject_below}: {result.metrics['rejected']:.1%} rejected; accuracy of the "
                   f"rest {'-' if accepted is None else f'{accepted:.4f}'}")
    click.echo(f"\n{len(examples)} examples in {result.seconds:.1f} s ({summary['examples_per_second']} examples/s)")
    if folder:
        write_jsonl(folder / "predictions.jsonl", result.rows())
        write_json(folder / "metrics.json", {**summary, **result.metrics})
        click.echo(f"wrote {folder / 'predictions.jsonl'} and {folder / 'metrics.json'}")
    if as_json:
        click.echo(json.dumps(summary))
