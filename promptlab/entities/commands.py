"""`zeroshot` and `fewshot` on entity tasks: check files and data first, then load models, run and report.

Outputs (with --output): metrics.json or fewshot.json; per run, predictions.conll (token, gold tag,
predicted tag; a blank line between sentences) and spans.jsonl (one line per sentence: id and its
predicted spans with token offsets `start`, `end` (exclusive), `type`, `text` and `score`).
"""
from __future__ import annotations

import functools
import json
import statistics
import time
from pathlib import Path

import click

from promptlab.aliases import DEFAULT_MODEL
from promptlab.catalog import Catalog, Setup
from promptlab.commands.fewshot import emit_summary, parse_options
from promptlab.entities.metrics import format_entity_metrics
from promptlab.entities.methods import EntityContext, entity_method_options, run_entity_method
from promptlab.errors import UserError
from promptlab.metrics import seed_std
from promptlab.models import load_model, resolve_model
from promptlab.outputs import output_folder, write_atomic, write_json, write_jsonl
from promptlab.sampling import parse_seeds

DEFAULT_MODELS = {"token-finetune": "minilm-l6", "entity-prompt": DEFAULT_MODEL}
OPTION_FLAGS = {"steps": "--steps", "lr": "--lr", "prompt_length": "--prompt-length", "batch_size": "--batch-size"}


def refuse_text_flags(task: str, flags: dict) -> None:
    """Flags of text classification only (an encoder, out-of-scope rejection) are refused by name."""
    for flag, value in flags.items():
        if value is not None:
            raise UserError(f"{flag} does not apply to entity task '{task}'", fix=f"leave out {flag}")


def run_zeroshot_command(*, task, template, verbalizer, model, calibrate, aggregate, data, split, limit, batch_size,
                         device, catalogs, output, as_json, trained=None, prompt=None, dtype=None,
                         reject_below=None) -> None:
    """entity-prompt without training: every candidate span typed by the template and verbalizer."""
    refuse_text_flags(task, {"--reject-below": reject_below})
    catalog = Catalog.from_options(catalogs)
    setup = prompt_setup(catalog, catalog.task(task), template, verbalizer)
    test = _labelled(setup.task.examples(split, data=data, limit=limit), data or setup.task.path)
    if trained or prompt:
        raise UserError("--trained is not supported on entity tasks yet",
                        fix="`fewshot --method token-finetune|entity-prompt --output DIR` scores its trained models "
                            "on the test split")
    options = entity_method_options("entity-prompt", {} if calibrate is None else {"calibrate": calibrate})
    calibrate = options.calibrate
    model_name = model or DEFAULT_MODEL
    resolve_model(model_name)
    loaded = load_model(model_name, device=device, dtype=dtype)
    click.echo(f"{setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} · "
               f"{loaded.name} ({loaded.kind}, {loaded.device}) · entity-prompt zero-shot · calibrate {calibrate} · "
               f"{len(test)} sentences")
    context = EntityContext(task=setup.task, setup=setup, model=model_name, device=device, test_examples=test,
                            seed=0, options=options, loaded=lambda: loaded)
    result = run_entity_method("entity-prompt", context)
    click.echo(format_entity_metrics(result["metrics"]))
    summary = {**setup.describe(), "kind": "entities", "model": loaded.name, "method": "entity-prompt",
               "calibrate": calibrate, "split": None if data else split, "data": data, "n": len(test),
               "f1": result["f1"], "precision": result["precision"], "recall": result["recall"],
               "options": result["options"], "seconds": result["seconds"]}
    click.echo(f"\n{len(test)} sentences in {result['seconds']:.1f} s")
    if output:
        folder = output_folder(output)
        _write_predictions(folder, test, result)
        write_json(folder / "metrics.json", {**summary, "metrics": result["metrics"]})
        click.echo(f"wrote {folder / 'metrics.json'}, predictions.conll and spans.jsonl")
    if as_json:
        click.echo(json.dumps(summary))


def run_fewshot_command(*, task, k, template, verbalizer, method, seeds, model, steps, lr, prompt_length, batch_size,
                        method_options=(), limit, device, catalogs, output, as_json, dtype=None, encoder=None,
                        reject_below=None) -> None:
    started = time.perf_counter()
    refuse_text_flags(task, {"--encoder": encoder, "--reject-below": reject_below})
    catalog = Catalog.from_options(catalogs)
    loaded_task = catalog.task(task)
    setup = prompt_setup(catalog, loaded_task, template, verbalizer) if method == "entity-prompt" else None
    seed_list = parse_seeds(seeds)
    given = {"steps": steps, "lr": lr, "prompt_length": prompt_length, "batch_size": batch_size}
    options = _method_flags(method, {name: value for name, value in given.items() if value is not None},
                            parse_options(method_options))
    test = _labelled(loaded_task.examples("test", limit=limit), loaded_task.path)
    loaded_task.examples("train")  # data mistakes surface before any model loads
    model_name = model or DEFAULT_MODELS[method]
    folder = output_folder(output) if output else None
    shared_model = functools.cache(lambda: load_model(model_name, device=device, dtype=dtype))
    click.echo(f"{loaded_task.name} · {model_name} · {method} · k={k} per type · {len(test)} test sentences")
    per_seed = []
    for seed in seed_list:
        context = EntityContext(task=loaded_task, setup=setup, model=model_name, device=device, test_examples=test,
                                seed=seed, options=options, loaded=shared_model,
                                save_to=str(folder / f"seed-{seed}") if folder else None)
        result = run_entity_method(method, context, k)
        dev = "-" if result["dev"] is None else f"{result['dev_metric']} {result['dev']:.4f}"
        click.echo(f"seed {seed:>4}: F1 {result['f1']:.4f}  precision {result['precision']:.4f}  "
                   f"recall {result['recall']:.4f}  dev {dev}  steps {result['train_steps']}  {result['seconds']:.1f} s")
        if folder:
            _write_predictions(folder / f"seed-{seed}", test, result)
        per_seed.append({key: value for key, value in result.items() if key not in ("predicted_tags", "spans")})
    f1s = [result["f1"] for result in per_seed]
    summary = {"task": loaded_task.name, "kind": "entities", **(setup.describe() if setup else {}),
               "model": model_name, "method": method, "k": k, "k_unit": "mentions per entity type", "seeds": seed_list,
               "n": len(test), "f1_mean": statistics.mean(f1s), "f1_std": seed_std(f1s),
               "precision_mean": statistics.mean(result["precision"] for result in per_seed),
               "recall_mean": statistics.mean(result["recall"] for result in per_seed),
               "options": per_seed[0]["options"], "per_seed": per_seed,
               "seconds": round(time.perf_counter() - started, 1)}
    click.echo(f"\n{method} k={k}: F1 {summary['f1_mean']:.4f} ± {summary['f1_std']:.4f} over {len(seed_list)} "
               f"seed(s)   ({summary['seconds']:.0f} s)")
    emit_summary(summary, folder, as_json)


def prompt_setup(catalog: Catalog, loaded_task, template: str | None, verbalizer: str | None) -> Setup:
    task = loaded_task.name
    template = template or loaded_task.template
    if template is None:
        names = sorted(catalog.template_files(task))
        if len(names) != 1:
            raise UserError(f"task '{task}' has {len(names) or 'no'} template{'s' if len(names) != 1 else ''}; "
                            "entity-prompt needs one over {{ sentence }} and {{ span }}",
                            fix="pass --template " + "|".join(names) if names
                            else f"write templates/{task}/t1.jinja in a catalog")
        template = names[0]
    return Setup.load(catalog, task, template, verbalizer)


def _method_flags(method: str, given: dict, extra: dict):
    """The method's options from its flags and --option NAME=VALUE, checked before any model loads."""
    defaults = entity_method_options(method, {})
    for name in given:
        if not hasattr(defaults, name):
            raise UserError(f"{OPTION_FLAGS[name]} does not apply to --method {method}",
                            fix=f"leave out {OPTION_FLAGS[name]}")
    return entity_method_options(method, {**given, **extra})


def _labelled(examples: list[dict], where) -> list[dict]:
    unlabelled = [example["id"] for example in examples if example.get("tags") is None]
    if unlabelled:
        raise UserError(f"{len(unlabelled)} sentence(s) have no tags (first: id {unlabelled[0]})", where=where,
                        fix="give every token its tag to evaluate")
    return examples


def _write_predictions(folder: Path, examples: list[dict], result: dict) -> None:
    conll = []
    for example, predicted in zip(examples, result["predicted_tags"]):
        conll += [f"{token}\t{gold}\t{tag}" for token, gold, tag in zip(example["tokens"], example["tags"], predicted)]
        conll.append("")
    write_atomic(folder / "predictions.conll", "\n".join(conll).encode())
    write_jsonl(folder / "spans.jsonl", [
        {"id": example["id"], "spans": [{"start": span.start, "end": span.end, "type": span.type,
                                         "text": " ".join(example["tokens"][span.start:span.end]),
                                         "score": round(score, 6)} for span, score in spans]}
        for example, spans in zip(examples, result["spans"])])
