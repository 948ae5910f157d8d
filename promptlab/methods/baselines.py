"""Baselines without prompts: a logistic-regression head on frozen sentence features, and majority."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from promptlab.methods.artefacts import Trained
from promptlab.apply.classifier import saved_head
from promptlab.errors import UserError
from promptlab.backends.features import example_text, features_of
from promptlab.methods.context import MethodContext, MethodOutcome


@dataclass
class HeadOptions:
    layer: int = -1  # which hidden layer of the scoring LM to pool (-1: the last)
    c_values: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])  # chosen on dev
    encoder: str | None = None  # a sentence encoder (alias, folder or hub id) instead of the scoring LM

    def __post_init__(self):
        check_c_values(self.c_values)


def check_c_values(c_values) -> None:
    if not c_values or any(isinstance(c, bool) or not isinstance(c, (int, float)) or c <= 0 for c in c_values):
        raise UserError(f"option c_values must be a list of positive numbers, got {c_values!r}")


@dataclass
class MajorityOptions:
    pass


def run_head(context: MethodContext) -> MethodOutcome:
    """SetFit's head without its contrastive step: standardised features, the C that does best on dev."""
    options: HeadOptions = context.options
    if options.encoder:
        from promptlab.methods.encoder_heads import run_encoder_head
        return run_encoder_head(context, options.encoder)
    split = context.split
    train_x, dev_x, test_x = (_features(context, examples)
                              for examples in (split.train, split.dev, context.test_examples))
    fitted = fit_head(train_x, context.gold(split.train), dev_x, context.gold(split.dev), options.c_values)
    probabilities = head_probabilities(fitted, test_x, len(context.labels))
    return MethodOutcome(probabilities.argmax(1).tolist(), fitted.dev_accuracy, details={"c": fitted.c},
                         trained=trained_head(fitted, options.layer), probabilities=probabilities.tolist())


@dataclass
class FittedHead:
    classifier: Any  # a scikit-learn pipeline: StandardScaler, LogisticRegression
    c: float
    dev_accuracy: float


def fit_head(train_x: np.ndarray, train_y: Sequence[int], dev_x: np.ndarray, dev_y: Sequence[int],
             c_values: Sequence[float]) -> FittedHead:
    """Standardised features, logistic regression; the C that does best on dev (the first on a tie)."""
    best: FittedHead | None = None
    for c in c_values:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(train_x, train_y)
        accuracy = float((classifier.predict(dev_x) == np.asarray(dev_y)).mean())
        if best is None or accuracy > best.dev_accuracy:
            best = FittedHead(classifier, c, accuracy)
    return best


def head_probabilities(fitted: FittedHead, x: np.ndarray, n_labels: int) -> np.ndarray:
    """[N, labels]: the head's probabilities, 0 for labels unseen in training, computed by the saved head's
    own path (scikit-learn's, in float32 on float32 features, can flip a near tie against a reload)."""
    tensors, state = head_tensors(fitted)
    logits = saved_head(tensors, state["classes"], n_labels)(torch.from_numpy(np.asarray(x)))
    return torch.softmax(logits, dim=-1).numpy()


def head_tensors(fitted: FittedHead) -> tuple[dict[str, torch.Tensor], dict]:
    """The fitted scaler and logistic regression as plain tensors (applied with apply.classifier.linear_head)
    and the state that goes with them."""
    scaler, regression = fitted.classifier[0], fitted.classifier[-1]
    tensors = {name: torch.from_numpy(np.asarray(value, dtype=np.float64))
               for name, value in (("mean", scaler.mean_), ("scale", scaler.scale_), ("coef", regression.coef_),
                                   ("intercept", regression.intercept_))}
    return tensors, {"c": fitted.c, "classes": [int(c) for c in regression.classes_]}


def trained_head(fitted: FittedHead, layer: int) -> Trained:
    tensors, state = head_tensors(fitted)
    return Trained("head", state={"layer": layer, **state}, tensors=tensors)


def run_majority(context: MethodContext) -> MethodOutcome:
    """The most frequent label of the training sample (the task's first label on a tie)."""
    counts = Counter(context.gold(context.split.train))
    label = min(counts, key=lambda index: (-counts[index], index))
    dev = context.gold(context.split.dev)
    return MethodOutcome([label] * len(context.test_examples), sum(gold == label for gold in dev) / len(dev),
                         trained=Trained("majority", state={"label": context.labels[label]}))


def _features(context: MethodContext, examples) -> np.ndarray:
    loaded = context.loaded
    texts = [example_text(context.setup.template, example) for example in examples]
    return features_of(loaded.model, loaded.tokenizer, texts, loaded.device, layer=context.options.layer).numpy()
