"""What answers the rows of `predict` and `serve`, for every kind of task: a `RowPredictor`.

    plan = plan_rows(catalog, task="sentiment", trained=None)   # every check that needs no model
    rows = plan.load(device="cpu")                               # then the model loads
    rows.answer([{"text": "a gripping film"}], [0])  ->  [{"label": "positive", "probabilities": {...}}]

A row predictor names the input fields it reads, turns a chunk of rows (with their positions in the
input) into one prediction each, and says how a prediction is written: its keys (they replace input
fields of the same name) and its CSV columns. Classification answers `label`, `probabilities` and,
with top_k, `top` (promptlab.apply.classifier); entity tasks answer `entities` over the row's raw
`text` (promptlab.apply.entity_predictors). PLANNERS maps a task kind to its planner: a new kind of
task adds one, and `predict` and `serve` take its rows as they are.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import torch

from promptlab.apply.registry import check_trained, open_classifier  # first: it loads the methods apply builds on
from promptlab.apply.classifier import Classifier, PromptClassifier
from promptlab.apply.entity_predictors import Predictor, describe, plan_predictor
from promptlab.apply.rows import PLAIN_FIELD
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.catalog.task import Task
from promptlab.data.words import entities_in_texts, tokenize
from promptlab.errors import UserError
from promptlab.methods.artefacts import load_trained
from promptlab.methods.entity_candidates import candidate_spans
from promptlab.metrics.rejection import reject_below

PROBABILITY_DIGITS = 6
CHUNK_BATCHES = 8  # a classifier's rows are answered (and written) this many batches at a time
ENTITY_CHUNK = 32  # an entity predictor's rows tagged together
Answer = Callable[[list[dict], list[int]], list[dict]]  # rows, their positions in the input -> one prediction each


@dataclass(frozen=True)
class RowLayout:
    """How a prediction is written: known before any model loads, so `predict` checks its output first."""

    keys: tuple[str, ...]  # the keys of a prediction, in the order rows get them
    columns: Callable[[dict], dict]  # a prediction as flat CSV columns


@dataclass(frozen=True)
class RowPredictor:
    fields: frozenset[str]  # what every row must hold
    reader: str  # what reads the fields, as messages name it ("template 't1'")
    text_fields: bool  # whether the fields must be strings (a template renders any value)
    answer: Answer
    layout: RowLayout
    route: str  # what `serve`'s clients POST to
    info: dict  # what `serve`'s GET /info tells besides fields and limits
    chunk_size: int  # rows answered together by `predict`
    summary: str  # one line: what predicts, for `predict` and `serve` to print
    # One row's own checks beyond its fields (UserError): `serve` runs them in the request's handler, before the
    # row can share a batch with other clients' rows.
    check: Callable[[dict], None] = lambda row: None
    # Batch calibration's first pass over a whole input (its rows, their positions), fixing the prior every answer
    # divides out (keep_scores=True: the rows' scores are kept for answering the same input after); None where
    # answers need none (see promptlab.apply.classifier).
    fix_prior: Callable[..., None] | None = None
    # What one row costs beyond its length, where that can be large: the candidate spans an entity-prompt row
    # renders and scores (`serve --max-spans` bounds their sum per request); None where a row costs one forward.
    cost: Callable[[dict], int] | None = None


# ---------------------------------------------------------------- classification

def prediction(labels: list[str], logprobs: torch.Tensor, top_k: int | None = None,
               reject_threshold: float | None = None) -> dict:
    """label, probabilities and (with top_k) top for one row of label log-probabilities.

    With `reject_threshold`, the label is `out_of_scope` when the top probability is below it.
    """
    probabilities = logprobs.exp().tolist()
    (label,) = reject_below([probabilities], labels, reject_threshold or 0.0)
    result = {"label": label,
              "probabilities": {label: round(p, PROBABILITY_DIGITS) for label, p in zip(labels, probabilities)}}
    if top_k:
        order = sorted(range(len(labels)), key=lambda i: -probabilities[i])[:top_k]
        result["top"] = [{"label": labels[i], "probability": round(probabilities[i], PROBABILITY_DIGITS)}
                         for i in order]
    return result


def classifier_rows(classifier: Classifier, info: dict, *, top_k: int | None = None,
                    reject_threshold: float | None = None, chunk_size: int = 64, summary: str = "") -> RowPredictor:
    """A classifier's rows: `label`, `probabilities` (one `p_<label>` CSV column each) and, with top_k, `top`."""
    labels = classifier.labels

    def answer(rows: list[dict], positions: list[int]) -> list[dict]:
        logprobs = classifier.logprobs(rows, positions=positions)
        return [prediction(labels, scores, top_k, reject_threshold) for scores in logprobs]

    return RowPredictor(frozenset(classifier.template.fields), f"template '{classifier.template.name}'", False, answer,
                        classifier_layout(labels), "/classify", {**info, "labels": labels}, chunk_size, summary,
                        check=classifier.template.render, fix_prior=classifier.fix_prior if isinstance(
                            classifier, PromptClassifier) and classifier.running_prior is not None else None)


def classifier_layout(labels: list[str]) -> RowLayout:
    def columns(predicted: dict) -> dict:
        flat = {"label": predicted["label"], **{f"p_{label}": predicted["probabilities"][label] for label in labels}}
        if "top" in predicted:
            flat["top"] = json.dumps(predicted["top"], ensure_ascii=False)
        return flat

    return RowLayout(("label", "probabilities", "top"), columns)


def plan_classifier(catalog: Catalog, task: str | None, *, trained, template, verbalizer, model, calibrate,
                    aggregate, top_k, reject_below) -> "RowsPlan":
    saved = load_trained(trained) if trained else None
    setup = Setup.for_run(catalog, task, template, verbalizer, saved=saved)
    check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
    top_k = min(top_k, len(setup.task.labels)) if top_k else None

    def load(*, device: str = "auto", dtype: str | None = None, batch_size: int | str = "auto") -> RowPredictor:
        opened = open_classifier(setup, saved, model=model, device=device, dtype=dtype, calibrate=calibrate,
                                 aggregate=aggregate, batch_size=batch_size, stream=True)
        info = {**setup.describe(), **opened.describe(), "model_fingerprint": opened.loaded.fingerprint,
                "method": saved.method if saved else "zero-shot",
                "trained": str(saved.folder) if saved else None, "reject_below": reject_below}
        summary = (f"{setup.task.name} · template {setup.template.name} · verbalizer {setup.verbalizer.name} · "
                   f"{opened.loaded.name} ({opened.loaded.kind}, {opened.loaded.device}) · calibrate "
                   f"{opened.calibrate or '-'}" + (f" · trained {saved.method} {saved.folder}" if saved else ""))
        return classifier_rows(opened.classifier, info, top_k=top_k, reject_threshold=reject_below,
                               chunk_size=opened.batch_size * CHUNK_BATCHES, summary=summary)

    return RowsPlan(setup.task, classifier_layout(setup.task.labels), load)


# ---------------------------------------------------------------- entities

def entity_rows(predictor: Predictor, types: list[str]) -> RowPredictor:
    """An entity predictor's rows: `entities` in the row's `text` (start, end, type, text, score), JSON in CSV."""

    def answer(rows: list[dict], positions: list[int]) -> list[dict]:
        return [{"entities": entities}
                for entities in entities_in_texts(predictor.predict, [row[PLAIN_FIELD] for row in rows])]

    return RowPredictor(frozenset({PLAIN_FIELD}), "entity tagging", True, answer, ENTITY_LAYOUT, "/entities",
                        {**predictor.info, "types": types}, ENTITY_CHUNK, describe(predictor),
                        cost=candidate_count(predictor.info))


def candidate_count(info: dict) -> Callable[[dict], int] | None:
    """An entity-prompt row's candidate spans, counted as its tagging enumerates them (one prompt each); None for
    a token tagger, whose cost is one forward over the text's tokens."""
    if "max_span" not in info:
        return None

    def count(row: dict) -> int:
        tokens = [token.text for token in tokenize(row[PLAIN_FIELD])]
        return len(candidate_spans(tokens, max_span=info["max_span"], keep=info["candidates"])) if tokens else 0

    return count


ENTITY_LAYOUT = RowLayout(("entities",), lambda predicted: {
    "entities": json.dumps(predicted["entities"], ensure_ascii=False)})


def plan_entities(catalog: Catalog, task: str | None, *, trained, template, verbalizer, model, calibrate,
                  aggregate, top_k, reject_below) -> "RowsPlan":
    plan = plan_predictor(catalog, task=task, trained=trained, template=template, verbalizer=verbalizer,
                          model=model, calibrate=calibrate, aggregate=aggregate)
    for flag, value in (("--top-k", top_k), ("--reject-below", reject_below)):
        if value is not None:
            raise UserError(f"{flag} does not apply to entity task '{plan.task.name}'", fix=f"leave out {flag}")
    if plan.options is not None and plan.options.calibrate == "batch":
        raise UserError(f"batch calibration does not apply to predict or serve on entity task '{plan.task.name}': "
                        "it divides out the mean over the candidate spans scored together, which here would be "
                        "whichever rows shared a chunk or a batch", fix="pass --calibrate contextual (or none)")

    def load(*, device: str = "auto", dtype: str | None = None, batch_size: int | str = "auto") -> RowPredictor:
        return entity_rows(plan.load(device=device, dtype=dtype), plan.task.labels)

    return RowsPlan(plan.task, ENTITY_LAYOUT, load)


# ---------------------------------------------------------------- by the task's kind

@dataclass(frozen=True)
class RowsPlan:
    task: Task
    layout: RowLayout
    load: Callable[..., RowPredictor]  # (*, device, dtype, batch_size) -> the row predictor, its model loaded


PLANNERS: dict[str, Callable[..., RowsPlan]] = {"classification": plan_classifier, "entities": plan_entities}


def plan_rows(catalog: Catalog, *, task: str | None, trained: str | None, template: str | None = None,
              verbalizer: str | None = None, model: str | None = None, calibrate: str | None = None,
              aggregate: str | None = None, top_k: int | None = None, reject_below: float | None = None) -> RowsPlan:
    """What will answer the rows of `task` (else of the task the --trained artefact names), checked against the
    task, its files and the flags given before any model loads."""
    name = task or (load_trained(trained).metadata.get("task") if trained else None)
    kind = catalog.task(name).kind if name else "classification"  # no task: the text command says what is missing
    return PLANNERS[kind](catalog, name, trained=trained, template=template, verbalizer=verbalizer, model=model,
                          calibrate=calibrate, aggregate=aggregate, top_k=top_k, reject_below=reject_below)
