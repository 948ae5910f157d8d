"""A backend that remembers the word scores of inference calls, so runs over the same prompts share them.

In a suite, zero-shot runs that differ only in calibration or aggregation read the same prompts and
label words: the first run scores them and the others read its scores. Calls with a soft prompt, or
with gradients on (training), always go to the model. The scores of a prompt come from the batch
that first scored it, which changes them only within the batch invariance the backends keep.
"""
from __future__ import annotations

from typing import Sequence

import torch

from promptlab.backends import Backend
from promptlab.catalog.template import Prompt


class CachedScores:
    def __init__(self, backend: Backend):
        self.backend = backend
        self.kind, self.model, self.tokenizer, self.device = backend.kind, backend.model, backend.tokenizer, backend.device
        self._scores: dict[Prompt, dict[str, float]] = {}

    def prompt_length(self, prompt: Prompt) -> int:
        return self.backend.prompt_length(prompt)

    def word_tokens(self, prompt: Prompt, word: str) -> list[int]:
        return self.backend.word_tokens(prompt, word)

    def word_logprobs(self, prompts: Sequence[Prompt], words: Sequence[str],
                      soft_prompt: torch.Tensor | None = None) -> torch.Tensor:
        if soft_prompt is not None or torch.is_grad_enabled():
            return self.backend.word_logprobs(prompts, words, soft_prompt)
        missing = list(dict.fromkeys(prompt for prompt in prompts
                                     if not set(words) <= self._scores.get(prompt, {}).keys()))
        if missing:
            scored = self.backend.word_logprobs(missing, words).float().cpu().tolist()
            for prompt, row in zip(missing, scored):
                self._scores.setdefault(prompt, {}).update(zip(words, row))
        return torch.tensor([[self._scores[prompt][word] for word in words] for prompt in prompts], device=self.device)
