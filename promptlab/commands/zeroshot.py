"""`promptlab zeroshot`: check every file and example first, then load the model and score."""
from __future__ import annotations

import json

import click

from promptlab import distributed
from promptlab.aliases import DEFAULT_MODEL
from promptlab.backends import make_backend
from promptlab.batching import initial_batch_size
from promptlab.catalog import Catalog, Setup
from promptlab.metrics import format_metrics
from promptlab.models import load_model, resolve_model
from promptlab.outputs import output_folder, write_json, write_jsonl
from promptlab.pipeline import classify, render_all, require_labels
from promptlab.progress import progress_bar
from promptlab.scoring import LabelScorer
from promptlab.softprompt import check_compatible, load_soft_prompt


def run_zeroshot_command(*, task, template, verbalizer, model, calibrate, aggregate, data, split, limit,
                         batch_size, device, catalogs, output, as_json, prompt=None, dtype=None) -> None:
    setup = Setup.load(Catalog.from_options(catalogs), task, template, verbalizer)
    examples = setup.task.examples(split, data=data, limit=limit)
    require_labels(examples, data or setup.task.path)
    prompts = render_all(setup.template, examples)  # every template/data mistake surfaces before the model loads
    saved = load_soft_prompt(prompt) if prompt else None
    if saved:
        check_compatible(saved, setup=setup)  # task, template, verbalizer: before the model loads
        calibrate, aggregate = _trained_scoring(saved, calibrate=calibrate, aggregate=aggregate)
    folder = output_folder(output) if output and distributed.is_main() else None  # one process writes
    model_name = model or DEFAULT_MODEL
    resolve_model(model_name)
    loaded = load_model(model_name, device=device, dtype=dtype)
    if saved:
        check_compatible(saved, setup=setup, loaded=loaded)
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device),
                         setup.template, setup.verbalizer, aggregate=aggregate, calibrate=calibrate,
                         batch_size=initial_batch_size(batch_size, loaded.device),
                         soft_prompt=saved.embeddings.to(loaded.device) if saved else None)
    with progress_bar(len(prompts), "scoring", unit="ex") as bar:
        result = classify(scorer, examples, prompts, setup.task.labels, progress=bar.update)
    summary = {**setup.describe(), "model": loaded.name, "kind": loaded.kind, "device": str(loaded.device),
               "dtype": str(loaded.model.dtype).removeprefix("torch."), "batch_size": scorer.batch_size,
               "calibrate": calibrate, "aggregate": aggregate, "prompt": prompt,
               "split": None if data else split, "data": data,
               "n": len(examples), "accuracy": result.metrics["accuracy"], "macro_f1": result.metrics["macro_f1"],
               "seconds": round(result.seconds, 3), "processes": distributed.world(),
               "examples_per_second": round(len(examples) / max(result.seconds, 1e-9), 2)}
    click.echo(f"{setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} · "
               f"{loaded.name} ({loaded.kind}, {loaded.device}) · calibrate {calibrate}"
               + (f" · soft prompt {saved.folder}" if saved else ""))
    click.echo(format_metrics(result.metrics))
    click.echo(f"\n{len(examples)} examples in {result.seconds:.1f} s ({summary['examples_per_second']} examples/s)")
    if folder:
        write_jsonl(folder / "predictions.jsonl", result.rows())
        write_json(folder / "metrics.json", {**summary, **result.metrics})
        click.echo(f"wrote {folder / 'predictions.jsonl'} and {folder / 'metrics.json'}")
    if as_json:
        click.echo(json.dumps(summary))


def _trained_scoring(saved, *, calibrate: str, aggregate: str) -> tuple[str, str]:
    """Flags left at their defaults take the scoring the prompt was trained with, so its scores reproduce."""
    context = click.get_current_context(silent=True)
    trained = saved.metadata.get("scoring", {})

    def pick(name: str, value: str) -> str:
        defaulted = context is not None and context.get_parameter_source(name) == click.core.ParameterSource.DEFAULT
        return trained.get(name, value) if defaulted else value

    return pick("calibrate", calibrate), pick("aggregate", aggregate)
