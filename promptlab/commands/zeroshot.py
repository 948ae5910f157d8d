"""`promptlab zeroshot`: check every file and example first, then load the model and score.

One path for every task kind: the task (--task, else the one a --trained artefact names) gives its kind
(promptlab.kinds), which reads and checks the examples; the predictor (promptlab.apply: a classifier, or an
entity tagger) answers them; the kind's metrics score them. With --trained it applies a trained artefact and
reproduces the score its `fewshot` run reported.

Outputs (with --output): metrics.json and the predictions (text: predictions.jsonl; entities:
predictions.conll and spans.jsonl, as `fewshot` writes them).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click

from promptlab.runtime import distributed
from promptlab.methods.artefacts import SavedTrained, load_trained
from promptlab.apply.entity_predictors import plan_predictor
from promptlab.apply.registry import check_trained, open_classifier
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.data.limits import DEFAULT_LIMIT_BY
from promptlab.errors import UserError
from promptlab.kinds import Kind, kind_of
from promptlab.kinds.entities import write_tagged
from promptlab.methods.entity_candidates import predicted_tags
from promptlab.runtime.outputs import output_folder, write_json, write_jsonl
from promptlab.methods.pipeline import Classified, render_all
from promptlab.runtime.progress import progress_bar
from promptlab.metrics.rejection import check_threshold, rejection_metrics


@dataclass
class Scored:
    """What a predictor made of the examples: the summary's fields, the metrics, and its output files."""

    summary: dict
    metrics: dict
    report: str  # the metrics as printed
    write: Callable[[Path], list[str]]  # writes the predictions into a folder; the names written


def run_zeroshot_command(*, task, template, verbalizer, model, calibrate, aggregate, data, split, limit,
                         batch_size, device, catalogs, output, as_json, trained=None, prompt=None, dtype=None,
                         reject_below=None, limit_by=DEFAULT_LIMIT_BY) -> None:
    check_threshold(reject_below)
    if prompt:
        click.echo("note: --prompt is deprecated; it is --trained now, which takes any method's artefact", err=True)
        trained = trained or prompt
    saved = load_trained(trained) if trained else None
    catalog = Catalog.from_options(catalogs)
    name = task or (saved.metadata.get("task") if saved else None)
    if name is None:
        raise UserError("no task given", fix="pass --task NAME, or --trained DIR (which names its task)")
    kind = kind_of(catalog.task(name))
    folder = output_folder(output) if output and distributed.is_main() else None  # one process writes
    scored = SCORERS[kind.name](kind, catalog, task=task, saved=saved, template=template, verbalizer=verbalizer,
                                model=model, calibrate=calibrate, aggregate=aggregate, data=data, split=split,
                                limit=limit, limit_by=limit_by, batch_size=batch_size, device=device, dtype=dtype,
                                reject_below=reject_below)
    click.echo(scored.report)
    n, seconds = scored.summary["n"], scored.summary["seconds"]
    click.echo(f"\n{n} {kind.unit} in {seconds:.1f} s ({round(n / max(seconds, 1e-9), 2)} {kind.unit}/s)")
    if folder:
        written = scored.write(folder)
        write_json(folder / "metrics.json", {**scored.summary, **scored.metrics})
        click.echo(f"wrote {folder / 'metrics.json'} and {', '.join(written)}")
    if as_json:
        click.echo(json.dumps(scored.summary))


def _classified(kind: Kind, catalog: Catalog, *, task: str | None, saved: SavedTrained | None, template, verbalizer,
                model, calibrate, aggregate, data, split, limit, limit_by, batch_size, device, dtype, reject_below
                ) -> Scored:
    """A classification task: a zero-shot classifier, or the --trained artefact's."""
    setup = Setup.for_run(catalog, task, template, verbalizer, saved=saved)
    examples = kind.labelled(kind.examples(setup.task, split, data=data, limit=limit, limit_by=limit_by),
                             data or setup.task.path)
    render_all(setup.template, examples)  # every template/data mistake surfaces before the model loads
    check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
    opened = open_classifier(setup, saved, model=model, device=device, dtype=dtype, calibrate=calibrate,
                             aggregate=aggregate, batch_size=batch_size)
    click.echo(f"{setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} · "
               f"{opened.loaded.name} ({opened.loaded.kind}, {opened.loaded.device}, {opened.loaded.dtype}) · "
               f"calibrate {opened.calibrate or '-'}" + (f" · trained {saved.method} {saved.folder}" if saved else ""))
    started = time.perf_counter()
    with progress_bar(len(examples), "scoring", unit="ex") as bar:
        logprobs = opened.classifier.logprobs(examples, progress=bar.update)
    result = Classified(setup.task.labels, examples, logprobs, time.perf_counter() - started,
                        reject_threshold=reject_below)
    gold = [example["label"] for example in examples]
    metrics = kind.score(examples, result.predicted, setup.task.labels)
    if reject_below is not None:  # a rejection counts as a wrong answer
        metrics.update(reject_below=reject_below, **rejection_metrics(gold, result.predicted))
    result.metrics = metrics
    report = kind.report(metrics)
    if reject_below is not None:
        accepted = metrics["accepted_accuracy"]
        report += (f"\nout_of_scope below {reject_below}: {metrics['rejected']:.1%} rejected; accuracy of the rest "
                   f"{'-' if accepted is None else f'{accepted:.4f}'}")
    summary = {**setup.describe(), **opened.describe(), "method": saved.method if saved else "zero-shot",
               "trained": str(saved.folder) if saved else None, "split": None if data else split, "data": data,
               "n": len(examples), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
               **{key: metrics[key] for key in ("reject_below", "rejected", "accepted_accuracy") if key in metrics},
               "seconds": round(result.seconds, 3), "processes": distributed.world(),
               "examples_per_second": round(len(examples) / max(result.seconds, 1e-9), 2)}

    def write(folder: Path) -> list[str]:
        write_jsonl(folder / "predictions.jsonl", result.rows())
        return ["predictions.jsonl"]

    return Scored(summary, metrics, report, write)


def _tagged(kind: Kind, catalog: Catalog, *, task: str | None, saved: SavedTrained | None, template, verbalizer,
            model, calibrate, aggregate, data, split, limit, limit_by, batch_size, device, dtype, reject_below
            ) -> Scored:
    """An entity task: the --trained artefact (token-finetune or entity-prompt), else entity-prompt zero-shot
    (every candidate span typed by the template and verbalizer)."""
    plan = plan_predictor(catalog, task=task, trained=str(saved.folder) if saved else None, template=template,
                          verbalizer=verbalizer, model=model, calibrate=calibrate, aggregate=aggregate)
    kind.refuse_flags(plan.task, {"--reject-below": reject_below})
    test = kind.labelled(kind.examples(plan.task, split, data=data, limit=limit, limit_by=limit_by),
                         data or plan.task.path)
    predictor = plan.load(device=device, dtype=dtype)
    info = predictor.info
    click.echo(" · ".join(str(part) for part in (info["task"], info["method"], info["trained"] or info["model"],
                                                 info.get("template"), f"{len(test)} sentences") if part))
    started = time.perf_counter()
    sentences = [example["tokens"] for example in test]
    spans = predictor.predict(sentences)
    seconds = round(time.perf_counter() - started, 3)
    tags = predicted_tags(spans, sentences)
    metrics = kind.score(test, tags, plan.task.labels)
    summary = {**predictor.info, "split": None if data else split, "data": data, "n": len(test), "f1": metrics["f1"],
               "precision": metrics["precision"], "recall": metrics["recall"], "seconds": seconds}

    def write(folder: Path) -> list[str]:
        write_tagged(folder, test, tags, spans)
        return ["predictions.conll", "spans.jsonl"]

    return Scored(summary, {"metrics": metrics}, kind.report(metrics), write)


# The predictor of each kind lives in promptlab.apply (above the kinds); the rest of the path is shared.
SCORERS: dict[str, Callable[..., Scored]] = {"classification": _classified, "entities": _tagged}
