"""From word log-probabilities to calibrated label log-probabilities.

    word scores [B, W] --aggregate per label--> [B, labels] --calibrate--> log p(label | x)

Aggregation over a label's words: `logsumexp` (the probability of saying any of them; default),
`mean` or `max` of their log-probabilities. Calibration (promptlab.backends.calibration):
- `contextual` (Calibrate Before Use): the label distribution of content-free inputs (every
  field "N/A", "" and the mask token) is averaged and divided out.
- `pmi` (PMI_DC): each word's log-probability minus its log-probability after the domain-only
  prompt (template metadata `domain`, else the template with every field empty).
- `batch` (Batch Calibration): the mean label distribution of the examples scored together is
  divided out; it is the one calibration that depends on the other examples, so it runs on the
  whole set (`calibrate_set`) after the per-example scores (`example_logprobs`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from promptlab.backends import Backend
from promptlab.backends.batching import BackOff
from promptlab.backends.calibration import CALIBRATIONS, batch_calibrate, content_free_fillers, divide_out, mean_distribution
from promptlab.catalog.template import Prompt, Template
from promptlab.catalog.verbalizer import AGGREGATIONS, Verbalizer


@dataclass
class LabelScorer:
    backend: Backend
    template: Template
    verbalizer: Verbalizer
    aggregate: str = "logsumexp"
    calibrate: str = "none"
    batch_size: int = 32  # the first try: a batch that runs out of GPU memory is halved, and so is this
    soft_prompt: torch.Tensor | None = None

    def __post_init__(self):
        assert self.aggregate in AGGREGATIONS and self.calibrate in CALIBRATIONS
        self.words = [word for words in self.verbalizer.words.values() for word in words]
        counts = [len(words) for words in self.verbalizer.words.values()]
        # word_of[label, j]: index into self.words of the label's j-th word; -1 pads shorter labels
        self.word_of = torch.full((len(counts), max(counts)), -1, dtype=torch.long)
        start = 0
        for label, count in enumerate(counts):
            self.word_of[label, :count] = torch.arange(start, start + count)
            start += count
        self._baseline: torch.Tensor | None = None
        self._backoff = BackOff()

    # -- building blocks -------------------------------------------------------------------
    def length_batches(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """The batches `word_scores` runs: prompt indices sorted by length (stable), cut every batch_size.

        Whole batches taken from this list in order are batched exactly so again, which is how
        processes share the work without changing any example's batch (pipeline.score_all).
        """
        order = sorted(range(len(prompts)), key=lambda i: self.backend.prompt_length(prompts[i]))
        return [order[start:start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def word_scores(self, prompts: Sequence[Prompt], *, progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """log p(word | prompt) [N, W], computed in batches of similar length, returned in input order."""
        batches = self.length_batches(prompts)
        pieces = []
        for batch in batches:
            pieces.extend(self._backoff.run(batch, lambda rows: self.backend.word_logprobs(
                [prompts[i] for i in rows], self.words, self.soft_prompt)))
            if progress:
                progress(len(batch))
        if self._backoff.limit:  # later calls start at the size that fitted
            self.batch_size = min(self.batch_size, self._backoff.limit)
        stacked = torch.cat(pieces)
        order = [i for batch in batches for i in batch]
        return stacked[torch.argsort(torch.tensor(order, device=stacked.device))]

    def aggregate_words(self, word_scores: torch.Tensor) -> torch.Tensor:
        """[N, W] word scores -> [N, labels] label scores."""
        index = self.word_of.to(word_scores.device)
        gathered = word_scores[:, index.clamp(min=0)]  # [N, labels, max_words]
        valid = index >= 0
        if self.aggregate == "logsumexp":
            return gathered.masked_fill(~valid, float("-inf")).logsumexp(-1)
        if self.aggregate == "max":
            return gathered.masked_fill(~valid, float("-inf")).amax(-1)
        return (gathered * valid).sum(-1) / valid.sum(-1)

    # -- calibration -----------------------------------------------------------------------
    def baseline(self) -> torch.Tensor:
        """What calibration subtracts: label log-probs [labels] (contextual) or word scores [W] (pmi)."""
        if self._baseline is None:
            if self.calibrate == "contextual":
                fillers = content_free_fillers(getattr(self.backend.tokenizer, "mask_token", None))
                prompts = [self.template.content_free(filler) for filler in fillers]
                self._baseline = mean_distribution(self.aggregate_words(self.word_scores(prompts)).log_softmax(-1))
            else:
                self._baseline = self.word_scores([self.template.domain_prompt()])[0]
        return self._baseline

    def example_logprobs(self, prompts: Sequence[Prompt], *, progress=None) -> torch.Tensor:
        """log p(label | prompt) [N, labels] with every calibration that looks at one example alone."""
        return self.labels_from_words(self.word_scores(prompts, progress=progress))

    def labels_from_words(self, words: torch.Tensor) -> torch.Tensor:
        """Word scores [N, W] -> label log-probs [N, labels], calibrated per example."""
        if self.calibrate == "pmi":
            words = words - self.baseline().to(words.device)
        labels = self.aggregate_words(words).log_softmax(-1)
        if self.calibrate == "contextual":
            labels = divide_out(labels, self.baseline())
        return labels

    def calibrate_set(self, logprobs: torch.Tensor) -> torch.Tensor:
        """The calibration that looks at all examples scored together (batch); the others pass through."""
        return batch_calibrate(logprobs) if self.calibrate == "batch" else logprobs

    def label_logprobs(self, prompts: Sequence[Prompt], *, progress=None) -> torch.Tensor:
        """Calibrated log p(label | prompt) [N, labels], normalised over the labels."""
        return self.calibrate_set(self.example_logprobs(prompts, progress=progress))
