"""`promptlab zeroshot`: check every file and example first, then load the model and score.

One path for every task kind: the task (--task, else the one a --trained artefact names) gives its kind
(promptlab.kinds), which reads and checks the examples; the predictor (promptlab.apply: a classifier, or an
entity tagger) answers them; the kind's metrics score them. With --trained it applies a trained artefact and
reproduces the score its `fewshot` run reported.

Outputs (with --output): metrics.json and the predictions (text: predictions.jsonl; entities:
predictions.conll and spans.jsonl, as `fewshot` writes them: the kind's write_run). The scoring is
promptlab.api.evaluate_examples; this command checks before the model loads, and prints.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import click

from promptlab import api
from promptlab.runtime import distributed
from promptlab.methods.artefacts import load_trained
from promptlab.apply.entity_predictors import plan_predictor
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.data.limits import DEFAULT_LIMIT_BY
from promptlab.errors import UserError
from promptlab.kinds import Kind, kind_of
from promptlab.runtime.outputs import output_folder, write_json
from promptlab.methods.pipeline import render_all
from promptlab.runtime.progress import progress_bar
from promptlab.metrics.rejection import check_threshold


@dataclass
class Scored:
    """What the classifier made of the examples: the summary's fields, the report, the evaluation."""

    summary: dict
    report: str  # the metrics as printed
    examples: list[dict]
    evaluation: api.Evaluation


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
    opening = {"task": task, "template": template, "verbalizer": verbalizer, "model": model, "calibrate": calibrate,
               "aggregate": aggregate, "trained": trained, "device": device, "dtype": dtype, "catalogs": catalogs}
    scored = SCORERS[kind.name](kind, catalog, opening, data=data, split=split, limit=limit, limit_by=limit_by,
                                batch_size=batch_size, reject_below=reject_below)
    click.echo(scored.report)
    n, seconds = scored.summary["n"], scored.summary["seconds"]
    click.echo(f"\n{n} {kind.unit} in {seconds:.1f} s ({round(n / max(seconds, 1e-9), 2)} {kind.unit}/s)")
    if folder:
        kind.write_run(folder, scored.examples, scored.evaluation.predictions)
        write_json(folder / "metrics.json", {**scored.summary, **kind.metrics_record(scored.evaluation.metrics)})
        click.echo(f"wrote {folder / 'metrics.json'} and {', '.join(kind.prediction_files)}")
    if as_json:
        click.echo(json.dumps(scored.summary))


def _classified(kind: Kind, catalog: Catalog, opening: dict, *, data, split, limit, limit_by, batch_size,
                reject_below) -> Scored:
    """A classification task: a zero-shot classifier, or the --trained artefact's."""
    saved = load_trained(opening["trained"]) if opening["trained"] else None
    setup = Setup.for_run(catalog, opening["task"], opening["template"], opening["verbalizer"], saved=saved)
    examples = kind.labelled(kind.examples(setup.task, split, data=data, limit=limit, limit_by=limit_by),
                             data or setup.task.path)
    render_all(setup.template, examples)  # every template/data mistake surfaces before the model loads
    classifier = api.Classifier(**opening, batch_size=batch_size)
    scoring = classifier.scoring
    click.echo(f"{setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} · "
               f"{scoring['model']} ({scoring['kind']}, {scoring['device']}, {scoring['dtype']}) · "
               f"calibrate {scoring['calibrate'] or '-'}" + (f" · trained {saved.method} {saved.folder}" if saved else ""))
    with progress_bar(len(examples), "scoring", unit="ex") as bar:
        evaluation = api.evaluate_examples(classifier, examples, reject_below=reject_below, progress=bar.update)
    metrics, seconds = evaluation.metrics, evaluation.seconds
    report = kind.report(metrics)
    if reject_below is not None:
        accepted = metrics["accepted_accuracy"]
        report += (f"\nout_of_scope below {reject_below}: {metrics['rejected']:.1%} rejected; accuracy of the rest "
                   f"{'-' if accepted is None else f'{accepted:.4f}'}")
    summary = {**setup.describe(), **scoring, "method": saved.method if saved else "zero-shot",
               "trained": str(saved.folder) if saved else None, "split": None if data else split, "data": data,
               "n": len(examples), "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
               **{key: metrics[key] for key in ("reject_below", "rejected", "accepted_accuracy") if key in metrics},
               "seconds": round(seconds, 3), "processes": distributed.world(),
               "examples_per_second": round(len(examples) / max(seconds, 1e-9), 2)}
    return Scored(summary, report, examples, evaluation)


def _tagged(kind: Kind, catalog: Catalog, opening: dict, *, data, split, limit, limit_by, batch_size,
            reject_below) -> Scored:
    """An entity task: the --trained artefact (token-finetune or entity-prompt), else entity-prompt zero-shot
    (every candidate span typed by the template and verbalizer)."""
    plan = plan_predictor(catalog, task=opening["task"], trained=opening["trained"], template=opening["template"],
                          verbalizer=opening["verbalizer"], model=opening["model"], calibrate=opening["calibrate"],
                          aggregate=opening["aggregate"])  # every check before the model loads
    kind.refuse_flags(plan.task, {"--reject-below": reject_below})
    test = kind.labelled(kind.examples(plan.task, split, data=data, limit=limit, limit_by=limit_by),
                         data or plan.task.path)
    classifier = api.Classifier(**opening)
    info = classifier.info
    click.echo(" · ".join(str(part) for part in (info["task"], info["method"], info["trained"] or info["model"],
                                                 info.get("template"), f"{len(test)} sentences") if part))
    evaluation = api.evaluate_examples(classifier, test)
    metrics = evaluation.metrics
    summary = {**info, "split": None if data else split, "data": data, "n": len(test), "f1": metrics["f1"],
               "precision": metrics["precision"], "recall": metrics["recall"],
               "seconds": round(evaluation.seconds, 3)}
    return Scored(summary, kind.report(metrics), test, evaluation)


# How each kind's classifier is checked and announced before it scores; the scoring is api.evaluate_examples.
SCORERS: dict[str, Callable[..., Scored]] = {"classification": _classified, "entities": _tagged}
