"""Baselines without prompts: a logistic-regression head on frozen sentence features, and majority."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from promptlab.methods.artefacts import Trained
from promptlab.backends.features import example_text, features_of
from promptlab.errors import UserError
from promptlab.methods.context import MethodContext, MethodOutcome
from promptlab.methods.logistic_head import FittedHead, check_c_values, fit_head, head_probabilities, head_tensors


@dataclass
class HeadOptions:
    layer: int = -1  # which hidden layer of the scoring LM to pool (-1: the last)
    c_values: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])  # chosen on dev
    encoder: str | None = None  # a sentence encoder (alias, folder or hub id) instead of the scoring LM
    # with an encoder: each label's verbalizer words join the head's rows as examples of it (intents with
    # meaningful names: Banking77 k = 10 0.864 -> 0.873 on mpnet-base, k = 1 0.54 -> 0.70 on minilm-l6)
    label_words: bool = False

    def __post_init__(self):
        check_c_values(self.c_values)
        if self.label_words is not True and self.label_words is not False:
            raise UserError(f"option label_words must be true or false, got {self.label_words!r}")
        if self.label_words and not self.encoder:
            raise UserError("option label_words needs an encoder: the words are embedded by it",
                            fix="add --encoder minilm-l6 (or mpnet-base), or leave out label_words")


@dataclass
class MajorityOptions:
    pass


def run_head(context: MethodContext) -> MethodOutcome:
    """SetFit's head without its contrastive step: standardised features, the C that does best on dev."""
    options: HeadOptions = context.options
    if options.encoder:
        from promptlab.methods.encoder_heads import run_encoder_head
        return run_encoder_head(context, options.encoder, label_words=options.label_words)
    split = context.split
    train_x, dev_x, test_x = (_features(context, examples)
                              for examples in (split.train, split.dev, context.test_examples))
    fitted = fit_head(train_x, context.gold(split.train), dev_x, context.gold(split.dev), options.c_values)
    probabilities = head_probabilities(fitted, test_x, len(context.labels))
    return MethodOutcome(probabilities.argmax(1).tolist(), fitted.dev_accuracy, details={"c": fitted.c},
                         trained=trained_head(fitted, options.layer), probabilities=probabilities.tolist())


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
