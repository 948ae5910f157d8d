"""The scoring pipeline every command shares: render every example, score the label words, report metrics."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from promptlab.runtime import distributed
from promptlab.errors import UserError
from promptlab.metrics.text import classification_metrics
from promptlab.metrics.rejection import reject_below
from promptlab.catalog.template import Prompt, Template


def render_all(template: Template, examples: Sequence[dict]) -> list[Prompt]:
    return [template.render(example) for example in examples]


def require_labels(examples: Sequence[dict], where: Path | str) -> None:
    unlabelled = [example["id"] for example in examples if example.get("label") is None]
    if unlabelled:
        raise UserError(f"{len(unlabelled)} example(s) have no label (first: id {unlabelled[0]})", where=where,
                        fix="add a label to every example (a label name or its index)")


@dataclass
class Classified:
    """Label probabilities of each example, with metrics where the examples carry labels."""

    labels: list[str]
    examples: list[dict]
    logprobs: torch.Tensor  # [N, labels]
    seconds: float
    metrics: dict = field(default_factory=dict)
    reject_threshold: float | None = None  # below this top probability the answer is out_of_scope

    @property
    def predicted(self) -> list[str]:
        if self.reject_threshold is not None:
            return reject_below(self.logprobs.exp().tolist(), self.labels, self.reject_threshold)
        return [self.labels[i] for i in self.logprobs.argmax(-1).tolist()]

    def rows(self) -> list[dict]:
        """One prediction row per example: id, gold, predicted and per-label probabilities."""
        probabilities = self.logprobs.exp().tolist()
        return [{"id": example["id"], "gold": example.get("label"), "predicted": predicted,
                 "probabilities": {label: round(p, 6) for label, p in zip(self.labels, row)}}
                for example, predicted, row in zip(self.examples, self.predicted, probabilities)]


def classify(scorer, examples: list[dict], prompts: list[Prompt], labels: list[str], *, progress=None) -> Classified:
    """Score all prompts in inference mode and compute metrics against the gold labels."""
    start = time.perf_counter()
    with torch.inference_mode():
        logprobs = score_all(scorer, prompts, len(labels), progress=progress)
    result = Classified(labels, examples, logprobs, time.perf_counter() - start)
    result.metrics = classification_metrics([e["label"] for e in examples], result.predicted, labels)
    return result


def score_all(scorer, prompts: list[Prompt], n_labels: int, *, progress=None) -> torch.Tensor:
    """Label log-probabilities [N, labels] on the CPU; under a launcher every process scores a share.

    The shares are whole batches of the single-process run (batch i on process i % world), so every
    example is scored in the same batch, padding included, as in one process: the same numbers.
    The scores are gathered once, and every process gets all of them; batch calibration runs on
    the gathered set, so its prior is the mean over all examples, as in one process.
    """
    if distributed.world() == 1:
        return scorer.label_logprobs(prompts, progress=progress).float().cpu()
    mine = [i for batch in distributed.shard(scorer.length_batches(prompts)) for i in batch]
    try:
        if not mine:  # fewer batches than processes
            local = torch.empty(0, n_labels)
        else:
            # The main process's bar stands for all: the shares are of about equal size.
            main_progress = (lambda n: progress(n * distributed.world())) if progress and distributed.is_main() else None
            local = scorer.example_logprobs([prompts[i] for i in mine], progress=main_progress).float().cpu()
    except Exception as error:  # noqa: BLE001 -- the others wait in the gather: give them the error, raise it here too
        local = error
    return scorer.calibrate_set(distributed.gather_rows(mine, local, len(prompts)))
