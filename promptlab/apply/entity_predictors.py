"""Entity predictors, opened one way for `predict`, `serve` and `zeroshot`: a trained artefact (token-finetune,
token-head or entity-prompt: the seed-N folders of `fewshot --output`) or, without one, zero-shot entity-prompt with the
task's template and verbalizer on a model. Every check that needs no model comes first (`plan_predictor`);
`PredictorPlan.load` then loads the model.

    plan = plan_predictor(catalog, task=None, trained="runs/ner/seed-13")   # the artefact names its task
    predictor = plan.load(device="cpu")
    predictor.predict([["Japan", "beat", "Syria"]])  -> per sentence [(Span, score), ...]
    entities_in_texts(predictor.predict, ["Japan beat Syria in Al Ain."])   # raw text: promptlab.data.words
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.methods.artefacts import SavedTrained, check_compatible, check_model_copy, load_trained
from promptlab.backends import make_backend
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.methods import entity_candidates as prompting
from promptlab.kinds.entities import ENTITIES
from promptlab.methods import method_options
from promptlab.methods.entity_prompt import EntityPromptOptions
from promptlab.data.words import SpanPredictor
from promptlab.methods.token_finetune import TokenFinetuneOptions, TokenTagger, spans_with_scores, tag_names
from promptlab.methods.token_head import LayerFeatures, TokenHead, backbone_fingerprint
from promptlab.errors import UserError
from promptlab.methods.softprompt import TENSOR_NAME
from promptlab.backends.models import load_model, resolve_model, weights_fingerprint
from promptlab.backends.scoring import LabelScorer
from promptlab.catalog.task import Task


@dataclass(frozen=True)
class Predictor:
    predict: SpanPredictor
    info: dict  # task, method, trained artefact, model and its scoring: what `serve`'s /info and --json tell


@dataclass(frozen=True)
class PredictorPlan:
    task: Task
    method: str  # token-finetune | token-head | entity-prompt
    saved: SavedTrained | None  # None: zero-shot entity-prompt
    setup: Setup | None  # entity-prompt's template and verbalizer
    model: str | None  # entity-prompt's model name
    options: EntityPromptOptions | None  # entity-prompt's candidates and scoring

    def load(self, *, device: str = "auto", dtype: str | None = None) -> Predictor:
        predict, weights = _LOADERS[self.method](self, device, dtype)
        return Predictor(predict, {**self.describe(), **weights})

    def describe(self) -> dict:
        scoring = {} if self.options is None else {
            "calibrate": self.options.calibrate, "aggregate": self.options.aggregate,
            "max_span": self.options.max_span, "candidates": self.options.candidates}
        return {"task": self.task.name, "kind": self.task.kind, **(self.setup.describe() if self.setup else {}),
                "method": self.method if self.saved else f"{self.method} zero-shot",
                "trained": str(self.saved.folder) if self.saved else None, **scoring}


def describe(predictor: Predictor) -> str:
    """One line: task, method, artefact or model, template (entity-prompt)."""
    info = predictor.info
    return " · ".join(str(part) for part in (
        info["task"], info["method"], info["trained"] or info["model"], info.get("template")) if part)


def plan_predictor(catalog: Catalog, *, task: str | None, trained: str | None, template: str | None = None,
                   verbalizer: str | None = None, model: str | None = None, calibrate: str | None = None,
                   aggregate: str | None = None) -> PredictorPlan:
    """What will predict: checked against the task, its files and the flags given, before any model loads."""
    saved = load_trained(trained) if trained else None
    loaded_task = catalog.task(task or saved.metadata.get("task"))
    scoring = {"calibrate": calibrate, "aggregate": aggregate}
    if saved is None:
        options = method_options("entity-prompt", {name: value for name, value in scoring.items() if value})
        setup = ENTITIES.setup(catalog, loaded_task, template, verbalizer, "entity-prompt")
        return PredictorPlan(loaded_task, "entity-prompt", None, setup, model or DEFAULT_MODEL, options)
    if saved.metadata.get("task") != loaded_task.name:
        raise UserError(f"this model was trained for task '{saved.metadata.get('task')}', not '{loaded_task.name}'",
                        where=saved.folder, fix=f"pass --task {saved.metadata.get('task')}, or leave --task out")
    if saved.method not in _LOADERS:
        raise UserError(f"this artefact was trained with '{saved.method}', which does not recognise entities",
                        where=saved.folder, fix="pass a seed-N folder written by  fewshot --method "
                                                + "|".join(_LOADERS) + " --output DIR")
    if saved.method in _OWN_MODEL:
        _refuse(saved, {"--template": template, "--verbalizer": verbalizer, "--model": model, **{
            f"--{name}": value for name, value in scoring.items()}})
        return PredictorPlan(loaded_task, saved.method, saved, None, None, None)
    setup = Setup.for_run(catalog, loaded_task.name, template, verbalizer, saved=saved)
    check_compatible(saved, setup=setup)
    chosen = {name: value or saved.scoring.get(name) for name, value in scoring.items()}
    options = method_options("entity-prompt", {**{name: saved.state[name] for name in ("max_span", "candidates")},
                                               **{name: value for name, value in chosen.items() if value}})
    return PredictorPlan(loaded_task, saved.method, saved, setup, model or saved.metadata.get("model"), options)


def _refuse(saved: SavedTrained, flags: dict) -> None:
    for flag, value in flags.items():
        if value:
            raise UserError(f"{flag} does not apply to a {saved.method} model (it tags tokens with its own "
                            "weights)", where=saved.folder, fix=f"leave out {flag}")


def _check_types(plan: PredictorPlan) -> None:
    if plan.saved.state["types"] != plan.task.labels:
        raise UserError(f"this model tags the types {plan.saved.state['types']}, task '{plan.task.name}' now lists "
                        f"{plan.task.labels}", where=plan.saved.folder, fix="train it again on the task as it is now")


def _tagger(plan: PredictorPlan, device: str, dtype: str | None) -> tuple[SpanPredictor, dict]:
    saved = plan.saved
    _check_types(plan)
    tagger = TokenTagger.load(str(saved.model_folder), saved.state["types"], device=device,
                              max_tokens=saved.state.get("max_tokens", TokenFinetuneOptions.max_tokens),
                              precision=saved.state.get("precision", "float32"),  # as its test split was scored
                              echo=saved.state.get("echo", False))
    check_model_copy(saved, weights_fingerprint(tagger.model))

    def predict(sentences):
        return [spans_with_scores(tags, scores) for tags, scores in tagger.predict(sentences)]

    return predict, {"model": saved.metadata.get("model"), **tagger.provenance()}


def _token_head(plan: PredictorPlan, device: str, dtype: str | None) -> tuple[SpanPredictor, dict]:
    saved, state = plan.saved, plan.saved.state
    _check_types(plan)
    tagger = TokenTagger.load(saved.metadata["model"], state["types"], device=device, max_tokens=state["max_tokens"],
                              precision=state["precision"], echo=state["echo"])
    fingerprint = backbone_fingerprint(tagger)
    if fingerprint != saved.metadata.get("model_fingerprint"):
        raise UserError(f"model '{saved.metadata['model']}' now loads weights with fingerprint {fingerprint}; this "
                        f"tagger was fitted on {saved.metadata.get('model_fingerprint')}", where=saved.folder,
                        fix="restore the model it was trained on, or train again with `promptlab fewshot`")
    features = LayerFeatures(tagger, state["layers"], state["reading"])
    head = TokenHead(saved.tensors, state["classes"], tag_names(state["types"]))

    def predict(sentences):
        return [spans_with_scores(tags, scores) for tags, scores in head.tag(features(sentences))]

    return predict, {"model": saved.metadata["model"], **tagger.provenance()}


def _prompted(plan: PredictorPlan, device: str, dtype: str | None) -> tuple[SpanPredictor, dict]:
    resolve_model(plan.model)
    loaded = load_model(plan.model, device=device, dtype=dtype)
    if plan.saved is not None:
        check_compatible(plan.saved, setup=plan.setup, fingerprint=loaded.fingerprint, model_name=loaded.name)
    setup, options = plan.setup, plan.options
    scorer = LabelScorer(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                         setup.verbalizer, calibrate=options.calibrate, aggregate=options.aggregate,
                         soft_prompt=plan.saved.tensors[TENSOR_NAME].to(loaded.device) if plan.saved else None)

    def predict(sentences):
        return prompting.recognise(scorer, setup.template, sentences, setup.verbalizer.labels,
                                   max_span=options.max_span, keep=options.candidates)

    return predict, {"model": loaded.name, **loaded.provenance()}


_LOADERS: dict[str, Callable[[PredictorPlan, str, str | None], tuple[SpanPredictor, dict]]] = {
    "token-finetune": _tagger, "token-head": _token_head, "entity-prompt": _prompted}
_OWN_MODEL = ("token-finetune", "token-head")  # they tag with their own weights: no template, verbalizer or --model
