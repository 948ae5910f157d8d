"""`promptlab fewshot`: check files, data and options first, then load the model, train and report per seed.

One path for every task kind: the task's kind (promptlab.kinds) checks the method and its options,
reads, checks and samples the data, runs a seed, and writes its predictions (text: predictions.jsonl;
entities: predictions.conll and spans.jsonl) beside the trained artefact in DIR/seed-N.
"""
from __future__ import annotations

import functools
import json
import time

import click

from promptlab.runtime import distributed
from promptlab.catalog.catalog import Catalog
from promptlab.methods.artefacts import claim_seed_folders
from promptlab.data.limits import DEFAULT_LIMIT_BY
from promptlab.errors import UserError
from promptlab.kinds import KINDS, kind_of
from promptlab.kinds.kind import OPTION_FLAGS
from promptlab.backends.models import load_model, resolve_model
from promptlab.runtime.outputs import output_folder, write_json
from promptlab.metrics.rejection import check_threshold
from promptlab.data.sampling import parse_seeds


def run_fewshot_command(*, task, k, template, verbalizer, method, seeds, model, steps, lr, prompt_length, batch_size,
                        method_options=(), limit, device, dtype=None, catalogs, output, as_json, encoder=None,
                        reject_below=None, overwrite=False, limit_by=DEFAULT_LIMIT_BY) -> None:
    started = time.perf_counter()
    check_threshold(reject_below)
    catalog = Catalog.from_options(catalogs)
    loaded_task = catalog.task(task)
    kind = kind_of(loaded_task)
    method = kind.check_method(method, loaded_task)
    kind.refuse_flags(loaded_task, {"--encoder": encoder, "--reject-below": reject_below})
    setup = kind.setup(catalog, loaded_task, template, verbalizer, method)
    seed_list = parse_seeds(seeds)
    flags = {"steps": steps, "lr": lr, "prompt_length": prompt_length, "batch_size": batch_size, "encoder": encoder}
    options = kind.method_options(method, flags, parse_options(method_options))
    pool, test = kind.check_data(loaded_task, setup, k, seed_list, limit, limit_by)
    folder = output_folder(output) if output and distributed.is_main() else None  # one process writes
    if folder:
        claim_seed_folders(folder, seed_list, overwrite=overwrite)
    model_name = kind.model_for(method, options, model)
    loaded = None
    if kind.uses_language_model(method, options):
        resolve_model(model_name)
        loaded = functools.cache(lambda: load_model(model_name, device=device, dtype=dtype))
        described = f"{loaded().name} ({loaded().kind}, {loaded().device}, {loaded().dtype})"
    else:  # a method that loads its own model (an encoder, a token classifier): loaded as it runs
        described = kind.describe_model(model_name)
    files = f" · template {setup.template.name} · verbalizer {setup.verbalizer.name}" if setup else ""
    click.echo(f"{loaded_task.name}{files} · {described} · {method} · k={k}{kind.k_per} · {len(test)} test "
               f"{kind.unit}")
    zero_shot = kind.baseline(setup, loaded() if loaded else None, test)
    if zero_shot is not None:
        click.echo(f"zero-shot ({kind.baseline_calibration} calibration): accuracy {zero_shot:.4f}")
    per_seed = []
    for seed in seed_list:
        result = kind.run_seed(method, task=loaded_task, setup=setup, model=model_name, loaded=loaded, pool=pool,
                               test=test, k=k, seed=seed, options=options,
                               save_to=folder / f"seed-{seed}" if folder else None, device=device,
                               reject_threshold=reject_below)
        click.echo(kind.seed_line(result))
        if folder:
            kind.write_run(folder / f"seed-{seed}", test, result)
        per_seed.append(kind.row(result))
    summary = {"task": loaded_task.name, "kind": kind.name, **(setup.describe() if setup else {}),
               "model": model_name, "model_fingerprint": loaded().fingerprint if loaded else None,
               "device": str(loaded().device) if loaded else None, "dtype": loaded().dtype if loaded else None,
               "method": method, "k": k, "k_unit": kind.k_unit, "seeds": seed_list, "n": len(test),
               **kind.summary_metrics(per_seed), "options": per_seed[0]["options"], "per_seed": per_seed}
    score = kind.metrics[0]
    if kind.baseline_calibration:
        summary.update(zero_shot_accuracy=zero_shot, zero_shot_calibration=kind.baseline_calibration)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    versus = "" if zero_shot is None else f"   zero-shot {zero_shot:.4f}"
    click.echo(f"\n{method} k={k}: {kind.score_name} {summary[f'{score}_mean']:.4f} ± {summary[f'{score}_std']:.4f} "
               f"over {len(seed_list)} seed(s){versus}   ({summary['seconds']:.0f} s)")
    emit_summary(summary, folder, as_json)


def method_help(method: str | None) -> str:
    """`fewshot --method M --help-method`: the method's options with their defaults and what they do; without a
    method, every method with its kind and what it does."""
    from promptlab.methods import REGISTRY
    from promptlab.methods.option_help import option_rows

    if method is None:
        return "\n".join([f"{name:<15} {entry.kind:<15} {entry.description}" for name, entry in REGISTRY.items()]
                         + ["", "fewshot --method M --help-method: the options of M"])
    entry = REGISTRY[method]
    rows = option_rows(entry.options)
    title = f"{method}: {entry.description} ({KINDS[entry.kind].adjective} tasks)"
    if not rows:
        return f"{title}\nIt takes no options."
    name_width, default_width = (max(len(row[column]) for row in rows) for column in (0, 1))
    flags = [flag for name, flag in OPTION_FLAGS.items() if name in {row[0] for row in rows}]
    return "\n".join([title, ""] + [f"  {name:<{name_width}}  {default:<{default_width}}  {description}".rstrip()
                                    for name, default, description in rows]
                      + ["", "Set with --option NAME=VALUE" + (f" ({', '.join(flags)} set theirs too)." if flags else ".")])


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


def emit_summary(summary: dict, folder, as_json: bool) -> None:
    """The run's summary as `fewshot.json` in the output folder and, with --json, as stdout's last line."""
    if folder:
        write_json(folder / "fewshot.json", summary)
        click.echo(f"wrote {folder / 'fewshot.json'}")
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
