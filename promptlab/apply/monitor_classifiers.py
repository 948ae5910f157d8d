"""The named classifiers of `monitor`: `--classifier NAME=SPEC`, planned (checked) first, then loaded.

SPEC is a trained artefact folder (any text method; an entity artefact of token-finetune or
entity-prompt), or a zero-shot setup `TASK[:TEMPLATE][@MODEL]` (an entity task: zero-shot entity-prompt).
A text classifier gives each document one label and its probabilities; an entity classifier gives
the entities found in the document's text field, each entity's text a value to group by.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from promptlab.apply.entity_predictors import PredictorPlan, plan_predictor
from promptlab.apply.predict import prediction
from promptlab.apply.registry import check_trained, open_classifier
from promptlab.backends.batching import initial_batch_size
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.data.words import entities_in_texts
from promptlab.errors import UserError
from promptlab.methods.artefacts import SavedTrained, load_trained

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
ENTITIES = "entities"  # the task kind whose classifiers find entities


@dataclass(frozen=True)
class ClassifierPlan:
    name: str
    spec: str
    labels: list[str] | None  # None: an entity classifier (its values are the entities found)
    fields: frozenset[str]  # the document fields it reads
    setup: Setup | None = None  # text classifiers
    saved: SavedTrained | None = None
    model: str | None = None
    entity_plan: PredictorPlan | None = None


# (documents' fields) -> per document: {"label", "probabilities"} or {"entities": [...]}
Labeller = Callable[[list[dict]], list[dict]]


@dataclass(frozen=True)
class OpenedClassifier:
    plan: ClassifierPlan
    label: Labeller
    description: str
    batch_size: int  # documents per forward


def parse_classifier_option(text: str) -> tuple[str, str]:
    name, separator, spec = text.partition("=")
    if not separator or not NAME.fullmatch(name) or not spec:
        raise UserError(f"--classifier '{text}' is not NAME=SPEC",
                        fix="write e.g. --classifier topic=runs/reuters/seed-13 or --classifier sentiment=sentiment:t1")
    return name, spec


def plan_classifiers(options: list[str], catalog: Catalog, *, text_field: str) -> list[ClassifierPlan]:
    """Every --classifier, checked against its files before any model loads."""
    if not options:
        raise UserError("no --classifier given", fix="pass e.g. --classifier topic=reuters8 --classifier "
                                                     "sentiment=financial-sentiment")
    plans, names = [], set()
    for option in options:
        name, spec = parse_classifier_option(option)
        if name in names:
            raise UserError(f"two classifiers are named '{name}'", fix="give each --classifier its own NAME")
        names.add(name)
        plans.append(_plan(name, spec, catalog, text_field))
    return plans


def _plan(name: str, spec: str, catalog: Catalog, text_field: str) -> ClassifierPlan:
    if Path(spec).is_dir():
        saved = load_trained(spec)
        if catalog.task(saved.metadata.get("task")).kind == ENTITIES:
            return ClassifierPlan(name, spec, None, frozenset({text_field}),
                                  entity_plan=plan_predictor(catalog, task=None, trained=spec))
        setup = Setup.for_run(catalog, None, None, None, saved=saved)
        check_trained(saved, setup, calibrate=None, aggregate=None, model=None)
        return ClassifierPlan(name, spec, setup.task.labels, frozenset(setup.template.fields), setup, saved)
    setup_text, _, model = spec.partition("@")
    task, _, template = setup_text.partition(":")
    if "/" in task:
        raise UserError(f"--classifier {name}={spec}: no such folder", where=spec,
                        fix="pass a seed-N folder written by fewshot --output, or TASK[:TEMPLATE][@MODEL]")
    if catalog.task(task).kind == ENTITIES:
        entity_plan = plan_predictor(catalog, task=task, trained=None, template=template or None, model=model or None)
        return ClassifierPlan(name, spec, None, frozenset({text_field}), entity_plan=entity_plan)
    setup = Setup.load(catalog, task, template or None)
    return ClassifierPlan(name, spec, setup.task.labels, frozenset(setup.template.fields), setup, model=model or None)


def open_classifiers(plans: list[ClassifierPlan], *, text_field: str, device: str, dtype: str | None,
                     batch_size: int | str) -> list[OpenedClassifier]:
    return [_open(plan, text_field, device, dtype, batch_size) for plan in plans]


def _open(plan: ClassifierPlan, text_field: str, device: str, dtype: str | None,
          batch_size: int | str) -> OpenedClassifier:
    if plan.entity_plan is not None:
        predictor = plan.entity_plan.load(device=device, dtype=dtype)

        def find_entities(documents: list[dict]) -> list[dict]:
            texts = [str(document[text_field]) for document in documents]
            return [{"entities": found} for found in entities_in_texts(predictor.predict, texts)]

        return OpenedClassifier(plan, find_entities, f"{plan.name}: entities, {predictor.info.get('method')} "
                                                     f"({predictor.info.get('model')})",
                                initial_batch_size(batch_size, torch.device("cpu")))
    opened = open_classifier(plan.setup, plan.saved, model=plan.model, device=device, dtype=dtype,
                             batch_size=batch_size, stream=True)
    classifier = opened.classifier

    def classify(documents: list[dict]) -> list[dict]:
        return [prediction(plan.labels, logprobs) for logprobs in classifier.logprobs(documents)]

    method = plan.saved.method if plan.saved else "zero-shot"
    return OpenedClassifier(plan, classify, f"{plan.name}: {plan.setup.task.name} · {method} · "
                                            f"{opened.loaded.name} ({opened.loaded.device}, {opened.loaded.dtype})", opened.batch_size)
