"""A classifier ready to apply: examples in, label log-probabilities out, whatever the method.

    Classifier.logprobs(examples, positions=None, progress=None) -> Tensor[N, labels] (CPU, float32)

Built for a stream (`predict`, `serve`), batch calibration divides out a prior over the whole input:
`fix_prior` first scores every row of it (a file's, or serve's --calibrate-on rows) and fixes their mean
label distribution, so each row's answer is what `zeroshot --calibrate batch` gives it, however the
rows are cut into chunks or requests. Without that first pass (standard input) it divides out a
running prior, the mean label distribution of every row classified so far
(promptlab.backends.calibration.RunningPrior). Otherwise it uses the mean over the examples of one call.

`positions` are the examples' positions in their input (a file, or one request: 0..n-1 when left
out); only methods whose choices depend on an example's position (random in-context
demonstrations, drawn in input order as `fewshot` draws them) read them. Three shapes cover every method so far: label words
scored through the template (`PromptClassifier`), a linear head on sentence features
(`FeatureClassifier`), and one fixed answer (`ConstantClassifier`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch

from promptlab.backends.calibration import RunningPrior, divide_out
from promptlab.backends.features import example_text
from promptlab.methods.pipeline import render_all, score_all
from promptlab.backends.scoring import LabelScorer
from promptlab.catalog.template import Prompt, Template

Progress = Callable[[int], None] | None
# (prompts, examples, positions) -> prompts: e.g. in-context demonstrations put in front
Arrange = Callable[[list[Prompt], Sequence[dict], Sequence[int]], list[Prompt]]


class Classifier(Protocol):
    labels: list[str]
    template: Template  # names the fields an example needs

    def logprobs(self, examples: Sequence[dict], *, positions: Sequence[int] | None = None,
                 progress: Progress = None) -> torch.Tensor: ...


@dataclass
class PromptClassifier:
    """Label words scored through the template: zero-shot, soft prompts, fine-tuned LMs, demonstrations."""

    labels: list[str]
    template: Template
    scorer: LabelScorer
    arrange: Arrange | None = None
    # Batch calibration of a stream (predict, serve): the prior is the mean over all rows seen so far,
    # until `fix_prior` fixes it from a whole input.
    running_prior: RunningPrior | None = None
    fixed_prior: torch.Tensor | None = None  # log prior [labels]
    first_pass: dict = field(default_factory=dict)  # position -> (example, uncalibrated scores), used once

    def logprobs(self, examples, *, positions=None, progress=None):
        if self.running_prior is None:  # batch calibration (if any) over the examples of this call
            prompts = self._prompts(examples, positions)
            with torch.inference_mode():
                return score_all(self.scorer, prompts, len(self.labels), progress=progress)
        scores = self._first_pass_scores(examples, positions)
        if scores is None:
            scores = self._uncalibrated(examples, positions, progress)
        if self.fixed_prior is not None:
            return divide_out(scores, self.fixed_prior)
        return self.running_prior.calibrate(scores)

    def fix_prior(self, examples: Sequence[dict], positions: Sequence[int], *, keep_scores: bool = False) -> None:
        """Batch calibration's first pass: every row of a whole input scored in one call, in the length-sorted
        batches `zeroshot` forms over a whole file (in bfloat16 a row's score depends on the rows that share its
        padded batch), and their mean label distribution fixed as the prior for every answer after. With
        `keep_scores` (predict's second pass over the same file) each row's scores are kept and used once instead
        of scoring it again."""
        scores = self._uncalibrated(examples, positions, None)
        prior = RunningPrior(warmup=0)
        prior.observe(scores)
        self.fixed_prior = prior.log_prior().float()
        self.first_pass = dict(zip(positions, zip(examples, scores))) if keep_scores else {}

    def _first_pass_scores(self, examples, positions) -> torch.Tensor | None:
        """The first pass's scores of these rows when it kept every one of them (the same rows at the same
        positions), else None."""
        if not self.first_pass or positions is None:
            return None
        kept = [self.first_pass.get(position) for position in positions]
        if any(entry is None or entry[0] != example for entry, example in zip(kept, examples)):
            return None
        for position in positions:
            del self.first_pass[position]
        return torch.stack([scores for _, scores in kept])

    def _prompts(self, examples, positions) -> list[Prompt]:
        prompts = render_all(self.template, examples)
        if self.arrange is not None:
            prompts = self.arrange(prompts, examples, range(len(examples)) if positions is None else positions)
        return prompts

    def _uncalibrated(self, examples, positions, progress) -> torch.Tensor:
        with torch.inference_mode():
            return self.scorer.example_logprobs(self._prompts(examples, positions), progress=progress).float().cpu()


@dataclass
class FeatureClassifier:
    """A head on sentence features of the example's own text (no template words)."""

    labels: list[str]
    template: Template
    features: Callable[[list[str]], torch.Tensor]  # texts -> [N, hidden]
    head: Callable[[torch.Tensor], torch.Tensor]  # features -> label logits [N, labels]
    batch_size: int = 32

    def logprobs(self, examples, *, positions=None, progress=None):
        texts = [example_text(self.template, example) for example in examples]
        pieces = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = texts[start:start + self.batch_size]
                pieces.append(self.head(self.features(batch)).float().log_softmax(-1).cpu())
                if progress:
                    progress(len(batch))
        return torch.cat(pieces) if pieces else torch.empty(0, len(self.labels))


@dataclass
class ConstantClassifier:
    """The same answer for every example (the majority baseline)."""

    labels: list[str]
    template: Template
    label: str
    _row: torch.Tensor = field(init=False)

    def __post_init__(self):
        self._row = torch.full((len(self.labels),), float("-inf"))
        self._row[self.labels.index(self.label)] = 0.0

    def logprobs(self, examples, *, positions=None, progress=None):
        for example in examples:  # the same field check as every other method
            self.template.render(example)
        if progress:
            progress(len(examples))
        return self._row.expand(len(examples), -1).clone()
