"""The named classifiers of `monitor`: `--classifier NAME=SPEC`, planned (checked) first, then loaded.

SPEC is a trained artefact folder (any method, text or entities) or a zero-shot setup
`TASK[:TEMPLATE][@MODEL]` (an entity task: zero-shot entity-prompt); either way promptlab.apply.answering
answers the documents, as it answers `predict`'s rows. A text classifier gives each document one label
and its probabilities; an entity classifier gives the entities found in the document's text field,
each entity's text a value to group by.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from promptlab.apply.answering import RowPredictor, RowsPlan, plan_rows
from promptlab.apply.rows import PLAIN_FIELD
from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
ENTITIES = "entities"  # the task kind whose classifiers find entities


@dataclass(frozen=True)
class ClassifierPlan:
    name: str
    spec: str
    rows: RowsPlan

    @property
    def labels(self) -> list[str] | None:
        """The label set; None for an entity classifier (its values are the entities found)."""
        return None if self.rows.task.kind == ENTITIES else self.rows.task.labels


@dataclass(frozen=True)
class OpenedClassifier:
    plan: ClassifierPlan
    predictor: RowPredictor
    text_field: str  # the field an entity classifier reads

    @property
    def description(self) -> str:
        return f"{self.plan.name}: {self.predictor.summary}"

    @property
    def fields(self) -> frozenset[str]:
        """The document fields it reads."""
        return frozenset({self.text_field}) if self.plan.labels is None else self.predictor.fields

    def label(self, documents: list[dict]) -> list[dict]:
        """Per document: {"label", "probabilities"}, or {"entities"} for an entity classifier."""
        if self.plan.labels is None:
            documents = [{PLAIN_FIELD: str(document[self.text_field])} for document in documents]
        return self.predictor.answer(documents, list(range(len(documents))))


def parse_classifier_option(text: str) -> tuple[str, str]:
    name, separator, spec = text.partition("=")
    if not separator or not NAME.fullmatch(name) or not spec:
        raise UserError(f"--classifier '{text}' is not NAME=SPEC",
                        fix="write e.g. --classifier topic=runs/reuters/seed-13 or --classifier sentiment=sentiment:t1")
    return name, spec


def plan_classifiers(options: list[str], catalog: Catalog) -> list[ClassifierPlan]:
    """Every --classifier, checked against its files before any model loads."""
    plans, names = [], set()
    for option in options:
        name, spec = parse_classifier_option(option)
        if name in names:
            raise UserError(f"two classifiers are named '{name}'", fix="give each --classifier its own NAME")
        names.add(name)
        plans.append(ClassifierPlan(name, spec, _plan(name, spec, catalog)))
    return plans


def _plan(name: str, spec: str, catalog: Catalog) -> RowsPlan:
    if Path(spec).is_dir():
        return plan_rows(catalog, task=None, trained=spec)
    setup, _, model = spec.partition("@")
    task, _, template = setup.partition(":")
    if "/" in task:
        raise UserError(f"--classifier {name}={spec}: no such folder", where=spec,
                        fix="pass a seed-N folder written by fewshot --output, or TASK[:TEMPLATE][@MODEL]")
    return plan_rows(catalog, task=task, trained=None, template=template or None, model=model or None)


def open_classifiers(plans: list[ClassifierPlan], *, text_field: str, device: str, dtype: str | None,
                     batch_size: int | str) -> list[OpenedClassifier]:
    return [OpenedClassifier(plan, plan.rows.load(device=device, dtype=dtype, batch_size=batch_size), text_field)
            for plan in plans]
