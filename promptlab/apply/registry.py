"""From a saved artefact (or none: zero-shot) to a ready classifier, method by method.

This is the extension point for new methods. A method that trains something:

1. returns `Trained(method=NAME, state=..., tensors=..., model=..., scoring=...)` as
   `MethodOutcome.trained` from its run function (see promptlab.methods.artefacts for the files);
2. writes `apply_NAME(context: ApplyContext) -> Classifier` that rebuilds the classifier from
   `context.saved` (its `state`, `tensors`, `model_folder`) and `context.loaded` (the model: the
   artefact's own copy when it saved one, else the base model it was trained on, fingerprint-checked);
3. adds `NAME: Applier(apply_NAME, prompted=...)` to APPLIERS below. `prompted` says whether the
   classifier scores label words through the template, so that --calibrate and --aggregate apply.

`predict`, `serve`, `zeroshot --trained` and `trained show` then take the method's folders as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.methods.logistic_head import linear_head, saved_head
from promptlab.methods.artefacts import SavedTrained, check_compatible, check_model_copy
from promptlab.apply.classifier import (
    Classifier,
    ConstantClassifier,
    FeatureClassifier,
    PromptClassifier,
)
from promptlab.backends import make_backend
from promptlab.backends.batching import initial_batch_size
from promptlab.backends.calibration import RunningPrior
from promptlab.catalog.catalog import Setup
from promptlab.errors import UserError
from promptlab.backends.models import LoadedModel, load_model, resolve_model
from promptlab.backends.scoring import LabelScorer

DEFAULT_CALIBRATION = "contextual"  # for zero-shot; trained artefacts default to the scoring they trained with
DEFAULT_AGGREGATION = "logsumexp"


@dataclass
class ApplyContext:
    setup: Setup
    loaded: LoadedModel
    saved: SavedTrained | None
    calibrate: str
    aggregate: str
    batch_size: int
    stream: bool = False  # rows arrive over time (predict, serve): batch calibration keeps a running prior

    def scorer(self, *, model=None, soft_prompt: torch.Tensor | None = None) -> LabelScorer:
        """Scoring through the template with the loaded model (or `model`, e.g. one wrapped with adapters)."""
        loaded = self.loaded
        return LabelScorer(make_backend(model if model is not None else loaded.model, loaded.tokenizer, loaded.kind,
                                        loaded.device),
                           self.setup.template, self.setup.verbalizer, aggregate=self.aggregate,
                           calibrate=self.calibrate, batch_size=self.batch_size,
                           soft_prompt=None if soft_prompt is None else soft_prompt.to(loaded.device))

    def prompt_classifier(self, **options) -> PromptClassifier:
        running_prior = RunningPrior() if self.stream and self.calibrate == "batch" else None
        return PromptClassifier(self.setup.task.labels, self.setup.template, self.scorer(**options),
                                running_prior=running_prior)


@dataclass(frozen=True)
class Applier:
    build: Callable[[ApplyContext], Classifier]
    prompted: bool = True  # scores label words through template and verbalizer: calibration applies


# ---------------------------------------------------------------- the methods

def apply_zero_shot(context: ApplyContext) -> Classifier:
    return context.prompt_classifier()


def apply_softprompt(context: ApplyContext) -> Classifier:
    return context.prompt_classifier(soft_prompt=context.saved.tensors["prompt_embeddings"])


def apply_finetune(context: ApplyContext) -> Classifier:
    return context.prompt_classifier()  # context.loaded is the fine-tuned copy


def apply_lora(context: ApplyContext) -> Classifier:
    from promptlab.methods.lora import load_adapters
    return context.prompt_classifier(model=load_adapters(context.loaded.model, context.saved.folder))


def apply_finetune_head(context: ApplyContext) -> Classifier:
    from promptlab.backends.features import pooled_features
    loaded, tensors = context.loaded, context.saved.tensors

    def features(texts):
        return pooled_features(loaded.model, loaded.tokenizer, texts, loaded.device)

    return FeatureClassifier(context.setup.task.labels, context.setup.template, features,
                             linear_head(tensors["head.weight"], tensors["head.bias"]))


def apply_head(context: ApplyContext) -> Classifier:
    from promptlab.backends.features import features_of
    loaded, tensors, state = context.loaded, context.saved.tensors, context.saved.state
    labels = context.setup.task.labels

    def features(texts):
        if loaded.kind == "encoder":  # head --encoder, setfit: the sentence encoder's embeddings
            from promptlab.backends.sentence_encoders import encode
            return torch.from_numpy(encode(loaded.model, texts))
        return features_of(loaded.model, loaded.tokenizer, texts, loaded.device, layer=state["layer"])

    return FeatureClassifier(labels, context.setup.template, features, saved_head(tensors, state["classes"], len(labels)))


def apply_icl(context: ApplyContext) -> Classifier:
    from promptlab.methods.icl import demonstration_arranger
    classifier = context.prompt_classifier()
    classifier.arrange = demonstration_arranger(context.setup, context.loaded, context.saved.state)
    return classifier


def apply_majority(context: ApplyContext) -> Classifier:
    return ConstantClassifier(context.setup.task.labels, context.setup.template, context.saved.state["label"])


ZERO_SHOT = Applier(apply_zero_shot)
APPLIERS: dict[str, Applier] = {
    "softprompt": Applier(apply_softprompt),
    "finetune": Applier(apply_finetune),
    "lora": Applier(apply_lora),
    "finetune-head": Applier(apply_finetune_head, prompted=False),
    "icl": Applier(apply_icl),
    "head": Applier(apply_head, prompted=False),
    "setfit": Applier(apply_head, prompted=False),  # the head on its fine-tuned encoder (loaded by _load)
    "majority": Applier(apply_majority, prompted=False),
}


# ---------------------------------------------------------------- opening a classifier

@dataclass
class Opened:
    classifier: Classifier
    loaded: LoadedModel
    calibrate: str | None  # None where calibration does not apply
    aggregate: str | None
    batch_size: int

    def describe(self) -> dict:
        return {"model": self.loaded.name, "kind": self.loaded.kind, "device": str(self.loaded.device),
                "dtype": self.loaded.dtype, "batch_size": self.batch_size,
                "calibrate": self.calibrate, "aggregate": self.aggregate}


def check_trained(saved: SavedTrained | None, setup: Setup, *, calibrate: str | None, aggregate: str | None,
                  model: str | None) -> None:
    """Every check that needs no model: run before loading one, so mistakes surface at once."""
    if saved is None:
        return
    check_compatible(saved, setup=setup)
    if saved.method not in APPLIERS:
        raise UserError(f"this artefact was trained with method '{saved.method}', which this promptlab cannot apply",
                        where=saved.folder, fix="use the promptlab version that trained it")
    if not APPLIERS[saved.method].prompted:
        given = [flag for flag, value in (("--calibrate", calibrate), ("--aggregate", aggregate)) if value]
        if given:
            raise UserError(f"{' and '.join(given)} do(es) not apply to method '{saved.method}', which does not "
                            f"score label words", fix=f"leave out {' and '.join(given)}")
    if saved.model_folder and model and model != saved.metadata.get("model"):
        raise UserError(f"this artefact carries its own fine-tuned weights (from '{saved.metadata.get('model')}'); "
                        f"--model {model} cannot replace them", where=saved.folder, fix="leave out --model")


def open_classifier(setup: Setup, saved: SavedTrained | None, *, model: str | None, device: str = "auto",
                    dtype: str | None = None, calibrate: str | None = None, aggregate: str | None = None,
                    batch_size: int | str = "auto", stream: bool = False) -> Opened:
    """Load the model an artefact needs (checked against it) and build its classifier.

    `calibrate`/`aggregate` None mean 'not given': zero-shot then uses contextual/logsumexp, and an
    artefact the scoring it was trained and tested with, so its numbers reproduce. `stream`: the
    classifier will see its rows a chunk at a time (see PromptClassifier.running_prior).
    """
    check_trained(saved, setup, calibrate=calibrate, aggregate=aggregate, model=model)
    applier = APPLIERS[saved.method] if saved else ZERO_SHOT
    trained_scoring = saved.scoring if saved else {}
    if applier.prompted:
        calibrate = calibrate or trained_scoring.get("calibrate", DEFAULT_CALIBRATION)
        aggregate = aggregate or trained_scoring.get("aggregate", DEFAULT_AGGREGATION)
    loaded = _load(saved, model, device, dtype, setup)
    context = ApplyContext(setup, loaded, saved, calibrate or "none", aggregate or DEFAULT_AGGREGATION,
                           initial_batch_size(batch_size, loaded.device), stream)
    return Opened(applier.build(context), loaded, calibrate, aggregate, context.batch_size)


def _load(saved: SavedTrained | None, model: str | None, device: str, dtype: str | None, setup: Setup) -> LoadedModel:
    if saved is not None and saved.metadata.get("model_kind") == "encoder":
        return _load_encoder(saved, device)
    if saved is not None and saved.model_folder:
        loaded = load_model(str(saved.model_folder), device=device, dtype=dtype)
        check_model_copy(saved, loaded.fingerprint)
        return loaded
    name = model or (saved.metadata.get("model") if saved else None) or setup.task.model or DEFAULT_MODEL
    resolve_model(name)
    loaded = load_model(name, device=device, dtype=dtype)
    if saved is not None:
        check_compatible(saved, setup=setup, fingerprint=loaded.fingerprint, model_name=loaded.name)
    return loaded


def _load_encoder(saved: SavedTrained, device: str) -> LoadedModel:
    """The sentence encoder of a head --encoder or setfit artefact: its own fine-tuned copy, else the named one."""
    from promptlab.backends.sentence_encoders import load_encoder
    own = saved.state.get("encoder_folder")
    encoder = load_encoder(str(saved.folder / own) if own else saved.state["encoder"], device=device)
    if own and encoder.fingerprint != saved.state.get("encoder_copy_fingerprint"):
        raise UserError(f"the fine-tuned encoder in {own}/ has weights fingerprint {encoder.fingerprint}, trained.json "
                        f"saved {saved.state.get('encoder_copy_fingerprint')}: it is not the encoder this head was "
                        "trained with", where=saved.folder, fix="train again into a new folder (fewshot --output NEW, "
                                                                "or --overwrite)")
    if not own and encoder.fingerprint != saved.metadata.get("model_fingerprint"):
        raise UserError(f"encoder '{encoder.name}' here is not the one this head was trained on (its weights "
                        "differ)", where=saved.folder, fix="install the encoder it names, or train the head again")
    return encoder.as_loaded_model()
