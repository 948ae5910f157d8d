"""SetFit's head: a standardised logistic regression on frozen sentence features, fitted with scikit-learn
and applied as plain tensors, so a method's own test predictions and every reload of its artefact take
one path (`head`, `setfit`, the continual router)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from promptlab.errors import UserError


def check_c_values(c_values) -> None:
    if not c_values or any(isinstance(c, bool) or not isinstance(c, (int, float)) or c <= 0 for c in c_values):
        raise UserError(f"option c_values must be a list of positive numbers, got {c_values!r}")


@dataclass
class FittedHead:
    classifier: Any  # a scikit-learn pipeline: StandardScaler, LogisticRegression
    c: float
    dev_accuracy: float


def fit_head(train_x: np.ndarray, train_y: Sequence[int], dev_x: np.ndarray, dev_y: Sequence[int],
             c_values: Sequence[float]) -> FittedHead:
    """Standardised features, logistic regression; the C that does best on dev (the first on a tie)."""
    # Imported here: scikit-learn (scipy with it) would add a second to the start of every command.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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
    """The fitted scaler and logistic regression as plain tensors (applied with `linear_head`) and the state
    that goes with them."""
    scaler, regression = fitted.classifier[0], fitted.classifier[-1]
    tensors = {name: torch.from_numpy(np.asarray(value, dtype=np.float64))
               for name, value in (("mean", scaler.mean_), ("scale", scaler.scale_), ("coef", regression.coef_),
                                   ("intercept", regression.intercept_))}
    return tensors, {"c": fitted.c, "classes": [int(c) for c in regression.classes_]}


def linear_head(weight: torch.Tensor, bias: torch.Tensor, *, mean: torch.Tensor | None = None,
                scale: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits of a (standardised) linear classifier; one row of weights is binary, as scikit-learn stores it."""
    def head(features: torch.Tensor) -> torch.Tensor:
        x = features.double().cpu()
        if mean is not None:
            x = (x - mean.double()) / scale.double()
        logits = x @ weight.double().T + bias.double()
        if weight.shape[0] == 1:  # binary: p(second class) = sigmoid(z) = softmax([0, z])
            logits = torch.cat([torch.zeros_like(logits), logits], dim=-1)
        return logits
    return head


def saved_head(tensors: dict[str, torch.Tensor], classes: list[int], n_labels: int
               ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logits [N, labels] of a saved scikit-learn head (scaler and logistic regression as tensors); the labels
    it never saw in training get -inf. The method's own test predictions and every reload use this one path,
    so a reloaded head answers exactly what its run reported, near ties included."""
    fitted = linear_head(tensors["coef"], tensors["intercept"], mean=tensors["mean"], scale=tensors["scale"])

    def head(features: torch.Tensor) -> torch.Tensor:
        logits = torch.full((features.shape[0], n_labels), float("-inf"), dtype=torch.float64)
        logits[:, classes] = fitted(features)
        return logits
    return head
