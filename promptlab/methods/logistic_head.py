"""SetFit's head: a standardised logistic regression on frozen sentence features, fitted with scikit-learn
and applied as plain tensors, so a method's own test predictions and every reload of its artefact take
one path (`head`, `setfit`, the continual router)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from promptlab.errors import UserError

CV_FOLDS = 4  # select=cv: folds over the k-shot train and dev rows together


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
    best: FittedHead | None = None
    for c in c_values:
        classifier = _classifier(c).fit(train_x, train_y)
        accuracy = float((classifier.predict(dev_x) == np.asarray(dev_y)).mean())
        if best is None or accuracy > best.dev_accuracy:
            best = FittedHead(classifier, c, accuracy)
    return best


def fit_head_cv(x: np.ndarray, y: Sequence[int], c_values: Sequence[float], *, seed: int,
                folds: int = CV_FOLDS) -> FittedHead:
    """The C whose stratified `folds`-fold cross-validated macro-F1 over all of (x, y) is best (the first on a
    tie), then refitted on all of them. Its `dev_accuracy` is that C's cross-validated accuracy."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(y)
    smallest_class = np.bincount(y).min(initial=len(y)) if len(y) else 0
    if smallest_class < 2:
        raise UserError("cross-validating the head needs at least 2 labelled examples of every label",
                        fix="pass a larger --k, or leave out the option select=cv")
    splitter = StratifiedKFold(min(folds, int(smallest_class)), shuffle=True, random_state=seed)
    best: tuple[float, float, float] | None = None  # (macro-F1, accuracy, C)
    for c in c_values:
        predicted = cross_val_predict(_classifier(c), x, y, cv=splitter)
        macro_f1 = f1_score(y, predicted, average="macro")
        if best is None or macro_f1 > best[0]:
            best = (macro_f1, float((predicted == y).mean()), c)
    _, accuracy, c = best
    return FittedHead(_classifier(c).fit(x, y), c, accuracy)


def self_trained(fitted: FittedHead, x: np.ndarray, y: Sequence[int], unlabelled_x: np.ndarray,
                 per_label: int) -> FittedHead:
    """One round of self-training: for each label, the `per_label` unlabelled rows the head predicts as that
    label with the highest probability join (x, y) under that label, and the head is refitted with its C."""
    if len(unlabelled_x) == 0:
        return fitted
    probabilities = fitted.classifier.predict_proba(unlabelled_x)
    predicted = probabilities.argmax(1)
    picked, labels = [], []
    for column, label in enumerate(fitted.classifier.classes_):
        rows = np.flatnonzero(predicted == column)
        rows = rows[np.argsort(-probabilities[rows, column], kind="stable")[:per_label]]
        picked.append(rows)
        labels += [int(label)] * len(rows)
    classifier = _classifier(fitted.c).fit(np.concatenate([x, unlabelled_x[np.concatenate(picked)]]),
                                           np.concatenate([np.asarray(y), np.asarray(labels, dtype=int)]))
    return FittedHead(classifier, fitted.c, fitted.dev_accuracy)


def _classifier(c: float):
    """Standardised features into a logistic regression of inverse regularisation strength `c`."""
    # Imported here: scikit-learn (scipy with it) would add a second to the start of every command.
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))


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
