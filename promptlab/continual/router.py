"""Which task is this? A classifier over task ids on frozen sentence features, for inference without the task.

Features are the frozen model's mean-pooled last hidden states of each example's own text (as the
`head` baseline uses), or a sentence encoder's embeddings of it (the suite's `router_encoder`, e.g.
mpnet-base; cached, as the encoder is frozen); the classifier is a standardised logistic regression
trained on the k-shot training samples of all tasks, its C chosen on their dev samples. No strategy changes it: the
features come from the base model, so routing is the same whichever strategy classifies afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from promptlab.catalog.catalog import Setup
from promptlab.backends.features import example_text, features_of
from promptlab.methods.logistic_head import fit_head
from promptlab.backends.models import LoadedModel
from promptlab.backends.sentence_encoders import LoadedEncoder
from promptlab.data.sampling import KShotSplit

ROUTER_C_VALUES = (0.01, 0.1, 1.0, 10.0)


@dataclass
class Routing:
    routed: list[list[int]]  # per task, the task index the router picked for each test example
    c: float
    dev_accuracy: float

    def accuracy(self) -> float:
        """Mean over tasks of the share of its test examples routed to it."""
        return float(np.mean([np.mean([r == task for r in row]) for task, row in enumerate(self.routed)]))


def route(loaded: LoadedModel, setups: Sequence[Setup], splits: Sequence[KShotSplit],
          tests: Sequence[list[dict]], c_values: Sequence[float] = ROUTER_C_VALUES,
          encoder: LoadedEncoder | None = None) -> Routing:
    def features(task: int, examples: list[dict]) -> np.ndarray:
        texts = [example_text(setups[task].template, example) for example in examples]
        if encoder is not None:
            return encoder.encode_frozen(texts)
        return features_of(loaded.model, loaded.tokenizer, texts, loaded.device).numpy()

    tasks = range(len(setups))
    train_x = np.concatenate([features(t, splits[t].train) for t in tasks])
    dev_x = np.concatenate([features(t, splits[t].dev) for t in tasks])
    train_y = [t for t in tasks for _ in splits[t].train]
    dev_y = [t for t in tasks for _ in splits[t].dev]
    fitted = fit_head(train_x, train_y, dev_x, dev_y, c_values)
    routed = [fitted.classifier.predict(features(t, tests[t])).tolist() if tests[t] else [] for t in tasks]
    return Routing(routed, fitted.c, fitted.dev_accuracy)
