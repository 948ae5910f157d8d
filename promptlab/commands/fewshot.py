"""`promptlab fewshot`: check files, data and options first, then load the model, train and report per seed.

One path for every task kind: the task's kind (promptlab.kinds) checks the method and its options,
reads, checks and samples the data, runs a seed, and writes its predictions (text: predictions.jsonl;
entities: predictions.conll and spans.jsonl) beside the trained artefact in DIR/seed-N. The run is
promptlab.api.fewshot's; this command parses the options and prints.
"""
from __future__ import annotations

import json

import click

from promptlab import api
from promptlab.data.limits import DEFAULT_LIMIT_BY
from promptlab.errors import UserError
from promptlab.kinds import KINDS
from promptlab.kinds.kind import OPTION_FLAGS


def run_fewshot_command(*, task, k, template, verbalizer, method, seeds, model, steps, lr, prompt_length, batch_size,
                        method_options=(), limit, device, dtype=None, catalogs, output, as_json, encoder=None,
                        reject_below=None, overwrite=False, limit_by=DEFAULT_LIMIT_BY) -> None:
    run = api.fewshot(task, method=method, k=k, seeds=seeds, template=template, verbalizer=verbalizer, model=model,
                      options=parse_options(method_options), steps=steps, lr=lr, prompt_length=prompt_length,
                      batch_size=batch_size, encoder=encoder, limit=limit, limit_by=limit_by,
                      reject_below=reject_below, output=output, save=output is not None, zero_shot=True,
                      progress=click.echo, overwrite=overwrite, device=device, dtype=dtype, catalogs=catalogs)
    summary = run.summary
    kind, score = KINDS[summary["kind"]], KINDS[summary["kind"]].metrics[0]
    zero_shot = summary.get("zero_shot_accuracy")
    versus = "" if zero_shot is None else f"   zero-shot {zero_shot:.4f}"
    click.echo(f"\n{summary['method']} k={k}: {kind.score_name} {summary[f'{score}_mean']:.4f} ± "
               f"{summary[f'{score}_std']:.4f} over {len(summary['seeds'])} seed(s){versus}   "
               f"({summary['seconds']:.0f} s)")
    if run.folder:  # api.fewshot wrote fewshot.json there
        click.echo(f"wrote {run.folder / 'fewshot.json'}")
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))


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
