"""`promptlab templates check`: lint every template, verbalizer and answer file of a catalog.

Every file parses, verbalizers match their task, and templates only use fields that the task's
local data has (`data_fields`: read by the task's kind, which the caller gives). The caller may add
checks of every template with every verbalizer (`pair_checks`: the tokenizer-aware ones of
promptlab.backends.word_checks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from promptlab.catalog.catalog import Catalog
from promptlab.catalog.task import Task
from promptlab.catalog.template import Template
from promptlab.catalog.verbalizer import Verbalizer
from promptlab.errors import UserError

SEVERITIES = ("error", "warning", "note")  # counted under the names they are printed with


@dataclass(frozen=True)
class Problem:
    severity: str  # one of SEVERITIES
    where: str
    message: str

    def format(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def _problem(severity: str, error: UserError) -> Problem:
    where = f"{error.where}:{error.line}" if error.line else str(error.where or "")
    return Problem(severity, where, error.inline)


def lint_catalog(catalog: Catalog, *, task: str | None = None,
                 data_fields: Callable[[Task], set[str] | None] = lambda task: None,
                 pair_checks: Callable[[Template, Verbalizer], list[Problem]] | None = None) -> list[Problem]:
    """Every problem found. `data_fields` gives the fields a task's local data has (None: not known)."""
    problems: list[Problem] = []
    for name in [task] if task else catalog.task_names():
        try:
            loaded_task = catalog.task(name)
        except UserError as error:
            problems.append(_problem("error", error))
            continue
        fields = data_fields(loaded_task)
        templates, verbalizers = [], []
        for template_name in catalog.template_files(name):
            try:
                templates.append(catalog.template(name, template_name))
            except UserError as error:
                problems.append(_problem("error", error))
        for verbalizer_name in catalog.verbalizer_files(name):
            try:
                verbalizers.append(catalog.verbalizer(loaded_task, verbalizer_name))
            except UserError as error:
                problems.append(_problem("error", error))
        problems += _answer_problems(catalog, loaded_task)
        if not templates:
            problems.append(Problem("warning", str(loaded_task.path), f"task '{name}' has no templates"))
        for template in templates:
            missing = sorted(template.fields - fields) if fields is not None else []
            if missing:
                problems.append(Problem("error", str(template.path),
                                        f"uses field(s) {', '.join(missing)} that the task's data lacks "
                                        f"(it has: {', '.join(sorted(fields))})"))
            if pair_checks is not None:
                problems += [check for verbalizer in verbalizers for check in pair_checks(template, verbalizer)]
    return problems


def _answer_problems(catalog: Catalog, task) -> list[Problem]:
    """Answer files load (labels, syntax, declared variables), and every label is answered or listed."""
    problems = []
    for name in catalog.answer_files(task.name):
        try:
            answers = catalog.answers(task, name)
        except UserError as error:
            problems.append(_problem("error", error))
            continue
        unlisted = answers.unlisted(task.labels)
        if unlisted:
            problems.append(Problem("warning", str(answers.path),
                                    f"{len(unlisted)} label(s) have no answer and are not listed under handoff or "
                                    f"retrieve, so they are answered from the knowledge base: {', '.join(unlisted)}"))
    return problems
