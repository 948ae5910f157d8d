"""`zeroshot` and `fewshot` on entity tasks: check files and data first, then load models, run and report.

`zeroshot` tags the test split with the predictor `predict` and `serve` use (promptlab.apply.entity_predictors):
a --trained artefact, reproducing the F1 its `fewshot` run reported, or zero-shot entity-prompt.

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

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.catalog.catalog import Catalog
from promptlab.commands.fewshot import emit_summary, parse_options
from promptlab.data.overlap import train_pool_without_test_texts
from promptlab.methods.artefacts import claim_seed_folders
from promptlab.methods.entity_prompt import EntityContext, entity_method_options, run_entity_method
from promptlab.metrics.entities import entity_metrics, format_entity_metrics
from promptlab.apply.entity_predict import describe
from promptlab.apply.entity_predictors import plan_predictor, prompt_setup
from promptlab.methods.entity_candidates import predicted_tags
from promptlab.errors import UserError
from promptlab.metrics.text import seed_std
from promptlab.backends.models import load_model
from promptlab.runtime.outputs import output_folder, write_atomic, write_json, write_jsonl
from promptlab.data.sampling import parse_seeds

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
    """Tag the test split with a --trained artefact (token-finetune or entity-prompt), else with entity-prompt
    zero-shot (every candidate span typed by the template and verbalizer), and score it."""
    plan = plan_predictor(Catalog.from_options(catalogs), task=task, trained=trained or prompt, template=template,
                          verbalizer=verbalizer, model=model, calibrate=calibrate, aggregate=aggregate)
    refuse_text_flags(plan.task.name, {"--reject-below": reject_below})
    test = labelled(plan.task.examples(split, data=data, limit=limit), data or plan.task.path)
    predictor = plan.load(device=device, dtype=dtype)
    click.echo(f"{describe(predictor)} · {len(test)} sentences")
    started = time.perf_counter()
    sentences = [example["tokens"] for example in test]
    spans = predictor.predict(sentences)
    seconds = round(time.perf_counter() - started, 3)
    tags = predicted_tags(spans, sentences)
    metrics = entity_metrics([example["tags"] for example in test], tags, plan.task.labels)
    click.echo(format_entity_metrics(metrics))
    summary = {**predictor.info, "split": None if data else split, "data": data, "n": len(test), "f1": metrics["f1"],
               "precision": metrics["precision"], "recall": metrics["recall"], "seconds": seconds}
    click.echo(f"\n{len(test)} sentences in {seconds:.1f} s")
    if output:
        folder = output_folder(output)
        _write_predictions(folder, test, tags, spans)
        write_json(folder / "metrics.json", {**summary, "metrics": metrics})
        click.echo(f"wrote {folder / 'metrics.json'}, predictions.conll and spans.jsonl")
    if as_json:
        click.echo(json.dumps(summary))


def run_fewshot_command(*, task, k, template, verbalizer, method, seeds, model, steps, lr, prompt_length, batch_size,
                        method_options=(), limit, device, catalogs, output, as_json, dtype=None, encoder=None,
                        reject_below=None, overwrite=False) -> None:
    started = time.perf_counter()
    refuse_text_flags(task, {"--encoder": encoder, "--reject-below": reject_below})
    catalog = Catalog.from_options(catalogs)
    loaded_task = catalog.task(task)
    setup = prompt_setup(catalog, loaded_task, template, verbalizer) if method == "entity-prompt" else None
    seed_list = parse_seeds(seeds)
    given = {"steps": steps, "lr": lr, "prompt_length": prompt_length, "batch_size": batch_size}
    options = _method_flags(method, {name: value for name, value in given.items() if value is not None},
                            parse_options(method_options))
    test = labelled(loaded_task.examples("test", limit=limit), loaded_task.path)
    pool = train_pool_without_test_texts(loaded_task.examples("train"), test, where=loaded_task.path)
    model_name = model or DEFAULT_MODELS[method]
    folder = output_folder(output) if output else None
    if folder:
        claim_seed_folders(folder, seed_list, overwrite=overwrite)
    shared_model = functools.cache(lambda: load_model(model_name, device=device, dtype=dtype))
    click.echo(f"{loaded_task.name} · {model_name} · {method} · k={k} per type · {len(test)} test sentences")
    per_seed = []
    for seed in seed_list:
        context = EntityContext(task=loaded_task, setup=setup, model=model_name, device=device, test_examples=test,
                                seed=seed, options=options, loaded=shared_model,
                                save_to=str(folder / f"seed-{seed}") if folder else None)
        result = run_entity_method(method, context, k, pool)
        dev = "-" if result["dev"] is None else f"{result['dev_metric']} {result['dev']:.4f}"
        click.echo(f"seed {seed:>4}: F1 {result['f1']:.4f}  precision {result['precision']:.4f}  "
                   f"recall {result['recall']:.4f}  dev {dev}  steps {result['train_steps']}  {result['seconds']:.1f} s")
        if folder:
            _write_predictions(folder / f"seed-{seed}", test, result["predicted_tags"], result["spans"])
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


def _method_flags(method: str, given: dict, extra: dict):
    """The method's options from its flags and --option NAME=VALUE, checked before any model loads."""
    defaults = entity_method_options(method, {})
    for name in given:
        if not hasattr(defaults, name):
            raise UserError(f"{OPTION_FLAGS[name]} does not apply to --method {method}",
                            fix=f"leave out {OPTION_FLAGS[name]}")
    return entity_method_options(method, {**given, **extra})


def labelled(examples: list[dict], where) -> list[dict]:
    unlabelled = [example["id"] for example in examples if example.get("tags") is None]
    if unlabelled:
        raise UserError(f"{len(unlabelled)} sentence(s) have no tags (first: id {unlabelled[0]})", where=where,
                        fix="give every token its tag to evaluate")
    return examples


def _write_predictions(folder: Path, examples: list[dict], tags: list[list[str]], spans: list[list[tuple]]) -> None:
    conll = []
    for example, predicted in zip(examples, tags):
        conll += [f"{token}\t{gold}\t{tag}" for token, gold, tag in zip(example["tokens"], example["tags"], predicted)]
        conll.append("")
    write_atomic(folder / "predictions.conll", "\n".join(conll).encode())
    write_jsonl(folder / "spans.jsonl", [
        {"id": example["id"], "spans": [{"start": span.start, "end": span.end, "type": span.type,
                                         "text": " ".join(example["tokens"][span.start:span.end]),
                                         "score": round(score, 6)} for span, score in sentence_spans]}
        for example, sentence_spans in zip(examples, spans)])
