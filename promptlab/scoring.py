"""From word log-probabilities to calibrated label log-probabilities.

    word scores [B, W] --aggregate per label--> [B, labels] --calibrate--> log p(label | x)

Aggregation over a label's words: `logsumexp` (the probability of saying any of them; default),
`mean` or `max` of their log-probabilities. Calibration:
- `contextual` (Calibrate Before Use): the label distribution of content-free inputs (every
  field "N/A", "" and the mask token) is averaged and divided out.
- `pmi` (PMI_DC): each word's log-probability minus its log-probability after the domain-only
  prompt (template metadata `domain`, else the template with every field empty).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from promptlab.backends import Backend
from promptlab.template import Prompt, Template
from promptlab.verbalizer import AGGREGATIONS, Verbalizer

CALIBRATIONS = ("none", "contextual", "pmi")
CONTENT_FREE_FILLERS = ("N/A", "", "[MASK]")


@dataclass
class LabelScorer:
    backend: Backend
    template: Template
    verbalizer: Verbalizer
    aggregate: str = "logsumexp"
    calibrate: str = "none"
    batch_size: int = 32
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

    # -- building blocks -------------------------------------------------------------------
    def word_scores(self, prompts: Sequence[Prompt], *, progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """log p(word | prompt) [N, W], computed in batches of similar length, returned in input order."""
        order = sorted(range(len(prompts)), key=lambda i: self.backend.prompt_length(prompts[i]))
        pieces = []
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            pieces.append(self.backend.word_logprobs([prompts[i] for i in batch], self.words, self.soft_prompt))
            if progress:
                progress(len(batch))
        stacked = torch.cat(pieces)
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
                fillers = [getattr(self.backend.tokenizer, "mask_token", None) or f for f in CONTENT_FREE_FILLERS]
                prompts = [self.template.content_free(filler) for filler in fillers]
                probs = self.aggregate_words(self.word_scores(prompts)).log_softmax(-1).exp().mean(0)
                self._baseline = probs.log()
            else:
                self._baseline = self.word_scores([self.template.domain_prompt()])[0]
        return self._baseline

    def label_logprobs(self, prompts: Sequence[Prompt], *, progress=None) -> torch.Tensor:
        """Calibrated log p(label | prompt) [N, labels], normalised over the labels."""
        words = self.word_scores(prompts, progress=progress)
        if self.calibrate == "pmi":
            words = words - self.baseline().to(words.device)
        labels = self.aggregate_words(words).log_softmax(-1)
        if self.calibrate == "contextual":
            labels = (labels - self.baseline().to(labels.device)).log_softmax(-1)
        return labels
