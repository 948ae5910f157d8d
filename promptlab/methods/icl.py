"""In-context learning: k-shot demonstrations in front of every prompt of a causal model, no training."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from promptlab.methods.artefacts import Trained
from promptlab.catalog.catalog import Setup
from promptlab.methods.demonstrations import (
    SELECTIONS,
    random_draws,
    render_demonstration,
    similar_choice,
    with_demonstrations,
)
from promptlab.errors import UserError
from promptlab.backends.features import example_text, features_of
from promptlab.methods.context import (
    MethodContext,
    MethodOutcome,
    predicted_indices,
    require_choice,
    require_positive,
)
from promptlab.backends.models import LoadedModel
from promptlab.methods.pipeline import score_all
from promptlab.catalog.template import Prompt
from promptlab.methods.training import evaluate
from promptlab.catalog.verbalizer import AGGREGATIONS


@dataclass
class ICLOptions:
    selection: str = "random"  # random | similar
    per_class: int = 4  # demonstrations of each label per prompt (at most k)
    separator: str = "\n\n"
    aggregate: str = "logsumexp"

    def __post_init__(self):
        require_choice("selection", self.selection, SELECTIONS)
        require_positive("per_class", self.per_class)
        require_choice("aggregate", self.aggregate, AGGREGATIONS)


def run_icl(context: MethodContext) -> MethodOutcome:
    loaded = context.loaded
    if loaded.kind != "causal":
        raise UserError(f"icl needs a causal model; '{loaded.name}' is a masked LM",
                        fix="pass --model with a causal LM (e.g. smollm2-135m), or another --method")
    options: ICLOptions = context.options
    scorer = context.scorer(aggregate=options.aggregate)
    dev, test = context.split.dev, context.test_examples
    dev_prompts = _demonstrations(context, "dev")(context.prompts(dev), dev, range(len(dev)))
    dev_accuracy, _ = evaluate(scorer.label_logprobs, dev_prompts, context.gold(dev))
    arrange = _demonstrations(context, "test")
    with torch.inference_mode():
        test_logprobs = score_all(scorer, arrange(context.prompts(test), test, range(len(test))), len(context.labels))
    trained = Trained("icl", state=arrange.state(), scoring={"calibrate": "none", "aggregate": options.aggregate})
    return MethodOutcome(predicted_indices(test_logprobs), dev_accuracy,
                         details={"demonstrations_per_prompt": arrange.per_class * len(context.labels)},
                         trained=trained)


def _demonstrations(context: MethodContext, purpose: str) -> Demonstrations:
    options: ICLOptions = context.options
    per_class = min(options.per_class, len(context.split.train) // len(context.labels))
    return Demonstrations(context.setup, context.loaded, context.split.train, options.selection, per_class,
                          options.separator, draw_seed=f"{purpose}-{context.seed}")


def demonstration_arranger(setup: Setup, loaded: LoadedModel, state: dict) -> Demonstrations:
    """The demonstrations of a saved icl artefact, chosen exactly as when it was tested."""
    return Demonstrations(setup, loaded, state["demonstrations"], state["selection"], state["per_class"],
                          state["separator"], draw_seed=state["draw_seed"])


class Demonstrations:
    """Puts demonstrations in front of prompts: (prompts, examples, positions) -> prompts.

    Random selection gives the example at position i of an input (a test split, a file, a request)
    draw i of the seeded sequence, so applying a saved artefact to the test file reproduces its test
    run; similar selection depends on the example alone.
    """

    def __init__(self, setup: Setup, loaded: LoadedModel, train: Sequence[dict], selection: str, per_class: int,
                 separator: str, *, draw_seed: str):
        self.setup, self.loaded, self.selection, self.per_class = setup, loaded, selection, per_class
        self.separator, self.draw_seed = separator, draw_seed
        keep = set(setup.template.fields) | {"id", "label"}  # what rendering and features read
        self.train = [{key: value for key, value in example.items() if key in keep} for example in train]
        self.texts = [render_demonstration(setup.template, setup.verbalizer, example) for example in self.train]
        self.train_labels = [example["label"] for example in self.train]
        self._draws = _DrawWindow(lambda: random_draws(self.train_labels, setup.task.labels, per_class, draw_seed))
        self._train_features: torch.Tensor | None = None

    def __call__(self, prompts: list[Prompt], examples: Sequence[dict], positions: Sequence[int]) -> list[Prompt]:
        if self.selection == "random":
            chosen = self._draws.at(positions)
        else:
            if self._train_features is None:
                self._train_features = self._features(self.train)
            chosen = similar_choice(self._train_features, self._features(examples), self.train_labels,
                                    self.setup.task.labels, self.per_class)
        return [with_demonstrations(prompt, [self.texts[i] for i in rows], self.separator)
                for prompt, rows in zip(prompts, chosen)]

    def state(self) -> dict:
        return {"selection": self.selection, "per_class": self.per_class, "separator": self.separator,
                "draw_seed": self.draw_seed, "demonstrations": self.train}

    def _features(self, examples: Sequence[dict]) -> torch.Tensor:
        texts = [example_text(self.setup.template, example) for example in examples]
        return features_of(self.loaded.model, self.loaded.tokenizer, texts, self.loaded.device)


class _DrawWindow:
    """Draw i of a seeded sequence for any position i, holding only the latest `keep` draws.

    Positions rise as a file streams by (a request's rows are 0..n-1), so memory stays flat however long
    the input; a position older than the window is drawn again by replaying the sequence from its seed.
    """

    def __init__(self, sequence: Callable[[], Iterator[list[int]]], keep: int = 4096):
        self._sequence, self._keep = sequence, keep
        self._restart()

    def _restart(self) -> None:
        self._next, self._first, self._window = self._sequence(), 0, deque()

    def at(self, positions: Sequence[int]) -> list[list[int]]:
        if not positions:
            return []
        if min(positions) < self._first:
            self._restart()
        while self._first + len(self._window) <= max(positions):
            self._window.append(next(self._next))
        chosen = [self._window[position - self._first] for position in positions]
        while len(self._window) > self._keep:
            self._window.popleft()
            self._first += 1
        return chosen
