"""`promptlab templates check`: the catalog's lint (promptlab.catalog.lint) with the data read by each task's
kind and the label words checked with a model's tokenizer (promptlab.backends.word_checks)."""
from __future__ import annotations

import sys

import click

from promptlab.backends.word_checks import word_checks
from promptlab.catalog.catalog import Catalog
from promptlab.catalog.lint import SEVERITIES, Problem, lint_catalog
from promptlab.catalog.task import Task
from promptlab.errors import UserError
from promptlab.kinds import kind_of


def run_check_command(*, task: str | None, model: str | None, catalogs) -> None:
    problems: list[Problem] = []
    catalog = Catalog.from_options(catalogs)
    pair_checks = word_checks(model, problems, default=catalog.task(task).model if task else None)
    problems += lint_catalog(catalog, task=task, data_fields=data_fields, pair_checks=pair_checks)
    for problem in problems:
        click.echo(problem.format())
    counts = {severity: sum(problem.severity == severity for problem in problems) for severity in SEVERITIES}
    click.echo(", ".join(f"{count} {severity}(s)" for severity, count in counts.items()))
    if counts["error"]:
        sys.exit(2)


def data_fields(task: Task) -> set[str] | None:
    """Fields of the first example of the task's first local data file, or None if none is local."""
    for split, spec in task.data.items():
        if isinstance(spec, str) and not spec.startswith("source:"):
            try:
                return set(kind_of(task).examples(task, split, limit=1)[0])
            except UserError:
                return None
    return None
