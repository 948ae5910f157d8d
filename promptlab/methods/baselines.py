"""Baselines without prompts: a logistic-regression head on frozen sentence features, and majority."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from promptlab.methods.artefacts import Trained
from promptlab.backends.features import example_text, features_of
from promptlab.errors import UserError
from promptlab.methods.context import MethodContext, MethodOutcome, require_choice
from promptlab.methods.logistic_head import (FittedHead, check_c_values, fit_head, fit_head_cv, head_probabilities,
                                             head_tensors, self_trained)


# select -> the C values tried when c_values is left out
SELECTIONS = {"dev": (0.01, 0.1, 1.0, 10.0), "cv": (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 1.0)}


@dataclass
class HeadOptions:
    layer: int = -1  # which hidden layer of the scoring LM to pool (-1: the last)
    # the C values tried; left out: 0.01-10 with select=dev, a finer grid 0.0003-1 with select=cv (stronger
    # regularisation: news-sentiment-zh titles on use-multilingual, k = 16, do best at 0.0003-0.001)
    c_values: list[float] | None = None
    # dev: fit on the k-shot train set, keep the C with the best accuracy on the k-shot dev set;
    # cv: keep the C with the best 4-fold cross-validated macro-F1 over train and dev together, then fit on
    # all of them (twice the rows: news-sentiment-zh k = 16, macro-F1 on the upstream dev 0.508 -> 0.564)
    select: str = "dev"
    # self-training: for each label, this many texts of the train split outside the k-shot sample (read without
    # their labels) that the head assigns to it most confidently join its rows, and it is refitted once
    # (news-sentiment-zh with select=cv, 100 per label: upstream dev macro-F1 at k = 16 0.564 -> 0.573; at k = 64,
    # where labelled rows outnumber them, test macro-F1 drops 0.592 -> 0.581)
    pseudo_labels: int = 0
    # a sentence encoder (alias, folder or hub id) instead of the scoring LM; several joined with '+'
    # give the head their rows side by side (backends.joined_encoders)
    encoder: str | None = None
    # with an encoder: each label's verbalizer words join the head's rows as examples of it (intents with
    # meaningful names: Banking77 k = 10 0.864 -> 0.873 on mpnet-base, k = 1 0.54 -> 0.70 on minilm-l6)
    label_words: bool = False

    def __post_init__(self):
        require_choice("select", self.select, SELECTIONS)
        if self.c_values is None:
            self.c_values = list(SELECTIONS[self.select])
        check_c_values(self.c_values)
        if isinstance(self.pseudo_labels, bool) or not isinstance(self.pseudo_labels, int) or self.pseudo_labels < 0:
            raise UserError(f"option pseudo_labels must be a whole number of texts per label, got "
                            f"{self.pseudo_labels!r}", fix="e.g. --option pseudo_labels=100, or 0 for none")
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
        return run_encoder_head(context, options.encoder, label_words=options.label_words,
                                fit=lambda *rows, unlabelled: fit_selected(options, *rows, context.seed, unlabelled))
    split = context.split
    train_x, dev_x, test_x = (_features(context, examples)
                              for examples in (split.train, split.dev, context.test_examples))
    fitted = fit_selected(options, train_x, context.gold(split.train), dev_x, context.gold(split.dev), context.seed,
                          lambda: _features(context, context.unlabelled))
    probabilities = head_probabilities(fitted, test_x, len(context.labels))
    return MethodOutcome(probabilities.argmax(1).tolist(), fitted.dev_accuracy, details={"c": fitted.c},
                         trained=trained_head(fitted, options.layer), probabilities=probabilities.tolist())


def fit_selected(options: HeadOptions, train_x: np.ndarray, train_y: list[int], dev_x: np.ndarray,
                 dev_y: list[int], seed: int, unlabelled: Callable[[], np.ndarray]) -> FittedHead:
    """The head `options.select` asks for (C chosen on dev, or by cross-validation over train and dev), then
    self-trained on `unlabelled()`'s rows when `options.pseudo_labels` asks for it."""
    if options.select == "cv":
        x, y = np.concatenate([train_x, dev_x]), train_y + dev_y
        fitted = fit_head_cv(x, y, options.c_values, seed=seed)
    else:
        x, y = train_x, train_y
        fitted = fit_head(x, y, dev_x, dev_y, options.c_values)
    return self_trained(fitted, x, y, unlabelled(), options.pseudo_labels) if options.pseudo_labels else fitted


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
