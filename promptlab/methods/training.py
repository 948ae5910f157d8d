"""One training loop for every trained method: AdamW on cross-entropy over label log-probabilities.

    label_logprobs(batch of inputs) -> [B, labels]   (LabelScorer.label_logprobs, or a head)

The loop only sees opaque inputs (prompts or texts), gold label indices and the module whose
trainable parameters it optimises. It evaluates on the dev set every `eval_every` steps (and
once before training, so a run that never improves keeps its starting point), keeps the best
parameters by dev accuracy (ties: lower dev loss), stops after `patience` evaluations without
improvement, and restores the best parameters at the end. Same seed, same numbers.

With `TrainConfig.precision` bfloat16 (or float16) every forward runs under autocast: matrix
products in the half precision, while the optimizer's parameters (soft prompts, adapters, the
master copy of fine-tuned weights) and their gradients stay float32.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch

from promptlab.runtime import distributed
from promptlab.runtime.progress import progress_bar

LabelLogprobs = Callable[[Sequence], torch.Tensor]


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    lr: float
    batch_size: int
    eval_every: int
    patience: int  # evaluations without dev improvement before stopping; 0 never stops early
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    precision: torch.dtype = torch.float32  # of the forward passes (autocast); the trained parameters stay float32
    device_type: str = "cpu"  # where the forwards run, for autocast


@dataclass
class TrainResult:
    steps: int  # optimizer steps taken
    best_step: int  # the step whose parameters were kept (0: the starting point)
    best_dev_accuracy: float | None
    losses: list[float] = field(default_factory=list)  # training loss of every step
    dev_history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, accuracy, loss)
    train_seconds: float = 0.0  # optimizer steps only, without dev evaluation

    @property
    def latest_dev_accuracy(self) -> float | None:
        return self.dev_history[-1][1] if self.dev_history else None

    @property
    def seconds_per_step(self) -> float:
        return self.train_seconds / self.steps if self.steps else 0.0


def train(module: torch.nn.Module, label_logprobs: LabelLogprobs, train_inputs: Sequence, train_labels: Sequence[int],
          dev_inputs: Sequence, dev_labels: Sequence[int], config: TrainConfig, *, description: str = "training"
          ) -> TrainResult:
    """Optimise the parameters of `module` that require grad; restore the best on dev at the end."""
    torch.manual_seed(config.seed)
    parameters = [parameter for parameter in module.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    result = TrainResult(steps=0, best_step=0, best_dev_accuracy=None)
    best = _Checkpoint(module)
    evaluate_dev = functools.partial(_evaluate_and_keep, result, best, label_logprobs, dev_inputs, dev_labels,
                                     precision=(config.device_type, config.precision))
    evaluate_dev(step=0)
    batches = _batches(len(train_inputs), config.batch_size, config.seed)
    stale = 0
    # Every step takes seconds, so short runs report too: a bar in a terminal, plain lines in logs.
    with progress_bar(config.steps, description, unit="step", always=True) as bar:
        for step in range(1, config.steps + 1):
            started = time.perf_counter()
            rows = next(batches)
            mine = distributed.shard(rows)  # data parallel under a launcher: a share of the same batch each
            with autocast(config.device_type, config.precision):
                loss = _step(optimizer, parameters, label_logprobs, [train_inputs[i] for i in mine],
                             torch.tensor([train_labels[i] for i in mine]), config.max_grad_norm, batch_rows=len(rows))
            result.train_seconds += time.perf_counter() - started
            result.steps = step
            result.losses.append(loss)
            if step % config.eval_every == 0 or step == config.steps:
                improved = evaluate_dev(step=step)
                stale = 0 if improved else stale + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", dev=_percent(result.latest_dev_accuracy))
            if config.patience and stale >= config.patience:
                break
    best.restore()
    return result


def _step(optimizer, parameters, label_logprobs: LabelLogprobs, inputs: list, gold: torch.Tensor,
          max_grad_norm: float, *, batch_rows: int) -> float:
    """One step on this process's `inputs` out of a batch of `batch_rows`; the batch's mean loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = torch.zeros(())
    if inputs:  # a batch smaller than the number of processes leaves some without a share
        logprobs = label_logprobs(inputs)
        # Sum over the share, divided by the whole batch: the processes' sums add up to the batch mean.
        loss = torch.nn.functional.nll_loss(logprobs, gold.to(logprobs.device), reduction="sum") / batch_rows
        loss.backward()
    loss_value = distributed.sum_gradients(parameters, loss)
    torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    optimizer.step()
    return loss_value


def _batches(size: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless seeded epochs of shuffled rows; the whole set each step when it fits in one batch."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(size, generator=generator).tolist()
        for start in range(0, size, batch_size):
            yield order[start:start + batch_size]


def evaluate(label_logprobs: LabelLogprobs, inputs: Sequence, labels: Sequence[int]) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on a labelled set, without gradients."""
    with torch.inference_mode():
        logprobs = label_logprobs(list(inputs)).float().cpu()
    gold = torch.tensor(list(labels))
    accuracy = float((logprobs.argmax(-1) == gold).float().mean())
    return accuracy, float(torch.nn.functional.nll_loss(logprobs, gold))


def _evaluate_and_keep(result: TrainResult, best: "_Checkpoint", label_logprobs: LabelLogprobs, dev_inputs: Sequence,
                       dev_labels: Sequence[int], *, precision: tuple[str, torch.dtype], step: int) -> bool:
    """Evaluate on dev; keep the parameters if they are the best so far. True when they are."""
    if not dev_inputs:  # nothing to select on: keep the latest parameters
        best.save()
        result.best_step = step
        return True
    with autocast(*precision):
        accuracy, loss = evaluate(label_logprobs, dev_inputs, dev_labels)
    result.dev_history.append((step, accuracy, loss))
    if result.best_dev_accuracy is not None and (accuracy, -loss) <= (result.best_dev_accuracy, -best.dev_loss):
        return False
    best.save(dev_loss=loss)
    result.best_step, result.best_dev_accuracy = step, accuracy
    return True


class _Checkpoint:
    """A copy of the module's trainable parameters, to restore the best ones after training."""

    def __init__(self, module: torch.nn.Module):
        self.parameters = {name: p for name, p in module.named_parameters() if p.requires_grad}
        self.saved: dict[str, torch.Tensor] = {}
        self.dev_loss = math.inf

    def save(self, *, dev_loss: float = math.inf) -> None:
        self.saved = {name: p.detach().clone() for name, p in self.parameters.items()}
        self.dev_loss = dev_loss

    def restore(self) -> None:
        with torch.no_grad():
            for name, p in self.parameters.items():
                p.copy_(self.saved[name])


def autocast(device_type: str, precision: torch.dtype) -> contextlib.AbstractContextManager:
    """Forwards in `precision` where it is a half precision (torch.autocast), as they are otherwise.

    Every trained method gets it through `train`; scoring outside it (after training) uses it too.
    """
    if precision == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=precision)


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """The model's weights take no gradients inside the block; their flags are restored after."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    model.requires_grad_(False)
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])


def _percent(accuracy: float | None) -> str:
    return "-" if accuracy is None else f"{100 * accuracy:.1f}%"
