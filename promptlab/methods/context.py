"""What every few-shot method receives and returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from promptlab.methods.artefacts import Trained
from promptlab.backends import make_backend
from promptlab.catalog.catalog import Setup
from promptlab.errors import UserError, did_you_mean
from promptlab.backends.models import LoadedModel
from promptlab.methods.pipeline import render_all
from promptlab.data.sampling import KShotSplit
from promptlab.backends.scoring import LabelScorer
from promptlab.catalog.template import Prompt
from promptlab.methods.training import TrainConfig, TrainResult

EVAL_BATCH = 32  # examples per scoring forward outside training


@dataclass
class TrainingOptions:
    """Options shared by the trained methods; each method sets its own defaults."""

    steps: int
    lr: float
    batch_size: int
    eval_every: int  # steps between dev evaluations
    patience: int  # dev evaluations without improvement before stopping (0: never stop early)
    weight_decay: float

    def __post_init__(self):
        for name in ("steps", "batch_size", "eval_every"):
            require_positive(name, getattr(self, name))
        require_positive("lr", self.lr)
        if self.patience < 0 or self.weight_decay < 0:
            raise UserError("options patience and weight_decay cannot be negative",
                            fix="use 0 to turn early stopping or weight decay off")

    def train_config(self, seed: int, loaded: LoadedModel) -> TrainConfig:
        """The training options with the seed, and forwards in the loaded model's dtype (autocast)."""
        return TrainConfig(steps=self.steps, lr=self.lr, batch_size=self.batch_size, eval_every=self.eval_every,
                           patience=self.patience, weight_decay=self.weight_decay, seed=seed,
                           precision=loaded.model.dtype, device_type=loaded.device.type)


def require_positive(option: str, value) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise UserError(f"option {option} must be a positive number, got {value!r}")


def require_choice(option: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise UserError(f"option {option}={value!r} is not one of: {', '.join(choices)}",
                        fix=did_you_mean(str(value), choices))


@dataclass
class MethodContext:
    setup: Setup
    loaded: LoadedModel | None  # None for methods that use no scoring LM (setfit, head --encoder)
    split: KShotSplit
    test_examples: list[dict]
    seed: int
    options: Any  # the method's options dataclass
    device: str = "auto"  # where encoder methods load their encoder (LM methods use loaded.device)
    # the train pool's examples outside the k-shot sample, without their labels (self-training reads them)
    unlabelled: list[dict] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return self.setup.task.labels

    def gold(self, examples: Sequence[dict]) -> list[int]:
        return [self.labels.index(example["label"]) for example in examples]

    def train_config(self) -> TrainConfig:
        return self.options.train_config(self.seed, self.loaded)

    def prompts(self, examples: Sequence[dict]) -> list[Prompt]:
        return render_all(self.setup.template, examples)

    def scorer(self, model: torch.nn.Module | None = None, *, aggregate: str = "logsumexp",
               batch_size: int = EVAL_BATCH) -> LabelScorer:
        """A scorer on the shared model (or `model`, a trained copy), uncalibrated: training learns the bias."""
        backend = make_backend(model if model is not None else self.loaded.model, self.loaded.tokenizer,
                               self.loaded.kind, self.loaded.device)
        return LabelScorer(backend, self.setup.template, self.setup.verbalizer, aggregate=aggregate,
                           batch_size=batch_size)


@dataclass
class MethodOutcome:
    predicted: list[int]  # label index of every test example
    dev_accuracy: float | None
    train_steps: int = 0
    details: dict = field(default_factory=dict)  # JSON-ready extras: seconds_per_step, best_step, ...
    trained: Trained | None = None  # what `fewshot --output` saves for predict/serve (promptlab.methods.artefacts)
    probabilities: list[list[float]] | None = None  # [test, labels], for --reject-below


def predicted_indices(logprobs: torch.Tensor) -> list[int]:
    return logprobs.argmax(-1).tolist()


def training_details(result: TrainResult) -> dict:
    """What a trained method reports beyond accuracy: the kept step, speed, and the curves."""
    return {"best_step": result.best_step, "seconds_per_step": round(result.seconds_per_step, 4),
            "losses": [round(loss, 4) for loss in result.losses],
            "dev_history": [[step, round(accuracy, 4), round(loss, 4)] for step, accuracy, loss in result.dev_history]}
