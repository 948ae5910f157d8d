"""`promptlab fewshot`: check files, data and options first, then load the model, train and report per seed."""
from __future__ import annotations

import json
import statistics
import time

import click

from promptlab.runtime import distributed
from promptlab.methods.artefacts import claim_seed_folders
from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.backends import make_backend
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.errors import UserError
from promptlab.methods import DEFAULT_OPTIONS, method_options, run_method, uses_scoring_model
from promptlab.methods import method_options as options_of  # the command has a parameter of that name
from promptlab.metrics.text import seed_std
from promptlab.backends.models import LoadedModel, load_model, resolve_model
from promptlab.runtime.outputs import output_folder, write_json, write_jsonl
from promptlab.data.overlap import train_pool_without_test_texts
from promptlab.methods.pipeline import classify, render_all, require_labels
from promptlab.runtime.progress import progress_bar
from promptlab.metrics.rejection import check_threshold
from promptlab.data.sampling import parse_seeds, sample_kshot
from promptlab.backends.scoring import LabelScorer

ZERO_SHOT_CALIBRATION = "contextual"
# CLI flags that set method options; a flag the method does not take is an error, not ignored.
OPTION_FLAGS = {"steps": "--steps", "lr": "--lr", "prompt_length": "--prompt-length", "batch_size": "--batch-size",
                "encoder": "--encoder"}


def run_fewshot_command(*, task, k, template, verbalizer, method, seeds, model, steps, lr, prompt_length, batch_size,
                        method_options=(), limit, device, dtype=None, catalogs, output, as_json, encoder=None,
                        reject_below=None, overwrite=False) -> None:
    started = time.perf_counter()
    check_threshold(reject_below)
    catalog = Catalog.from_options(catalogs)
    setup = Setup.load(catalog, task, template, verbalizer)
    seed_list = parse_seeds(seeds)
    flags = {"steps": steps, "lr": lr, "prompt_length": prompt_length, "batch_size": batch_size, "encoder": encoder}
    options = _method_flags(method, {name: value for name, value in flags.items() if value is not None},
                            parse_options(method_options))
    pool, test = _check_data(setup, k, seed_list, limit)
    folder = output_folder(output) if output and distributed.is_main() else None  # one process writes
    if folder:
        claim_seed_folders(folder, seed_list, overwrite=overwrite)
    loaded, zero_shot = None, None
    if uses_scoring_model(method, options):
        model_name = model or DEFAULT_MODEL
        resolve_model(model_name)
        loaded = load_model(model_name, device=device, dtype=dtype)
        described = f"{loaded.name} ({loaded.kind}, {loaded.device}, {loaded.dtype})"
    else:  # an encoder method: no LM to load, and no zero-shot line to compare with
        described = f"encoder {options_of(method, options).encoder}"
    click.echo(f"{setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} · "
               f"{described} · {method} · k={k} · {len(test)} test examples")
    if loaded is not None:
        zero_shot = _zero_shot_accuracy(setup, loaded, test)
        click.echo(f"zero-shot ({ZERO_SHOT_CALIBRATION} calibration): accuracy {zero_shot:.4f}")
    per_seed = []
    for seed in seed_list:
        result = run_method(method, setup=setup, loaded=loaded, train_pool=pool, test_examples=test, k=k, seed=seed,
                            options=options, save_to=folder / f"seed-{seed}" if folder else None, device=device,
                            reject_threshold=reject_below)
        click.echo(_seed_line(result))
        if folder:
            write_jsonl(folder / f"seed-{seed}" / "predictions.jsonl", result["predictions"])
        per_seed.append({key: value for key, value in result.items() if key != "predictions"})
    summary = _summary(setup, loaded, method, k, seed_list, per_seed, zero_shot, len(test), started)
    versus = "" if zero_shot is None else f"   zero-shot {zero_shot:.4f}"
    click.echo(f"\n{method} k={k}: accuracy {summary['accuracy_mean']:.4f} ± {summary['accuracy_std']:.4f} over "
               f"{len(seed_list)} seed(s){versus}   ({summary['seconds']:.0f} s)")
    emit_summary(summary, folder, as_json)


def _method_flags(method: str, given: dict, extra: dict) -> dict:
    """The options the flags and --option set, checked against the method before any model loads."""
    for name in given:
        if name not in DEFAULT_OPTIONS.get(method, {}):
            raise UserError(f"{OPTION_FLAGS[name]} does not apply to --method {method}",
                            fix=f"leave out {OPTION_FLAGS[name]}")
    if "save_to" in extra:
        raise UserError("--option save_to is set by --output", fix="pass --output DIR instead")
    options = {**given, **extra}
    method_options(method, options)
    return options


def parse_options(pairs) -> dict:
    """NAME=VALUE pairs into options; each value is read as YAML (16 -> int, 1e-4 -> float, q_proj,v_proj -> text)."""
    import yaml

    options = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name.strip():
            raise UserError(f"--option '{pair}' is not NAME=VALUE", fix="write e.g. --option rank=16")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        options[name.strip()] = _number(parsed) if isinstance(parsed, str) else parsed
    return options


def _number(text: str):
    """YAML 1.1 reads 1e-4 as text; a number is meant."""
    try:
        return float(text)
    except ValueError:
        return text


def _check_data(setup: Setup, k: int, seeds: list[int], limit: int | None) -> tuple[list[dict], list[dict]]:
    """Load and render everything, and sample every seed: data mistakes surface before the model loads."""
    full_test = setup.task.examples("test")
    pool = train_pool_without_test_texts(setup.task.examples("train"), full_test, where=setup.task.path)
    test = full_test[:limit] if limit is not None else full_test
    require_labels(test, setup.task.path)
    render_all(setup.template, pool + test)
    for seed in seeds:
        sample_kshot(pool, setup.task.labels, k, seed)
    return pool, test


def _zero_shot_accuracy(setup: Setup, loaded: LoadedModel, test: list[dict]) -> float:
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                         setup.verbalizer, calibrate=ZERO_SHOT_CALIBRATION)
    with progress_bar(len(test), "zero-shot", unit="ex") as bar:
        result = classify(scorer, test, render_all(setup.template, test), setup.task.labels, progress=bar.update)
    return result.metrics["accuracy"]


def _seed_line(result: dict) -> str:
    dev = "-" if result["dev_accuracy"] is None else f"{result['dev_accuracy']:.4f}"
    line = (f"seed {result['seed']:>4}: accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  "
            f"dev {dev}  steps {result['train_steps']}  {result['seconds']:.1f} s")
    if "reject_below" in result:
        accepted = result["accepted_accuracy"]
        line += (f"  rejected {result['rejected']:.1%} (accuracy of the rest "
                 f"{'-' if accepted is None else f'{accepted:.4f}'})")
    if result.get("artifact"):
        line += f"  saved {result['artifact']}"
    return line


def emit_summary(summary: dict, folder, as_json: bool) -> None:
    """The run's summary as `fewshot.json` in the output folder and, with --json, as stdout's last line."""
    if folder:
        write_json(folder / "fewshot.json", summary)
        click.echo(f"wrote {folder / 'fewshot.json'}")
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))


def _summary(setup: Setup, loaded: LoadedModel | None, method: str, k: int, seeds: list[int], per_seed: list[dict],
             zero_shot: float | None, n: int, started: float) -> dict:
    accuracies = [result["accuracy"] for result in per_seed]
    model = {"model": loaded.name, "model_fingerprint": loaded.fingerprint} if loaded else {
        "model": per_seed[0]["options"]["encoder"], "model_fingerprint": None}
    return {**setup.describe(), **model, "device": str(loaded.device) if loaded else "cpu",
            "dtype": loaded.dtype if loaded else None, "method": method, "k": k,
            "seeds": seeds, "n": n, "accuracy_mean": statistics.mean(accuracies),
            "accuracy_std": seed_std(accuracies),
            "macro_f1_mean": statistics.mean(result["macro_f1"] for result in per_seed),
            "zero_shot_accuracy": zero_shot, "zero_shot_calibration": ZERO_SHOT_CALIBRATION,
            "options": per_seed[0]["options"],
            "per_seed": per_seed,
            "seconds": round(time.perf_counter() - started, 1)}
