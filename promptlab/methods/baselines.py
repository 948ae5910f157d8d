"""Baselines without prompts: a logistic-regression head on frozen sentence features, and majority."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from promptlab.errors import UserError
from promptlab.features import example_text, features_of
from promptlab.methods.context import MethodContext, MethodOutcome


@dataclass
class HeadOptions:
    layer: int = -1  # which hidden layer to pool (-1: the last)
    c_values: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])  # chosen on dev

    def __post_init__(self):
        if not self.c_values or any(not isinstance(c, (int, float)) or c <= 0 for c in self.c_values):
            raise UserError(f"option c_values must be a list of positive numbers, got {self.c_values!r}")


@dataclass
class MajorityOptions:
    pass


def run_head(context: MethodContext) -> MethodOutcome:
    """SetFit's head without its contrastive step: standardised features, the C that does best on dev."""
    options: HeadOptions = context.options
    split = context.split
    train_x, dev_x, test_x = (_features(context, examples)
                              for examples in (split.train, split.dev, context.test_examples))
    train_y, dev_y = np.array(context.gold(split.train)), np.array(context.gold(split.dev))
    best_c, best_accuracy, best_classifier = None, -1.0, None
    for c in options.c_values:
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(train_x, train_y)
        accuracy = float((classifier.predict(dev_x) == dev_y).mean())
        if accuracy > best_accuracy:
            best_c, best_accuracy, best_classifier = c, accuracy, classifier
    return MethodOutcome(best_classifier.predict(test_x).tolist(), best_accuracy, details={"c": best_c})


def run_majority(context: MethodContext) -> MethodOutcome:
    """The most frequent label of the training sample (the task's first label on a tie)."""
    counts = Counter(context.gold(context.split.train))
    label = min(counts, key=lambda index: (-counts[index], index))
    dev = context.gold(context.split.dev)
    return MethodOutcome([label] * len(context.test_examples), sum(gold == label for gold in dev) / len(dev))


def _features(context: MethodContext, examples) -> np.ndarray:
    loaded = context.loaded
    texts = [example_text(context.setup.template, example) for example in examples]
    return features_of(loaded.model, loaded.tokenizer, texts, loaded.device, layer=context.options.layer).numpy()
