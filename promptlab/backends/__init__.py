"""Backends turn prompts into log p(word | prompt) for every label word.

Both backends share one protocol, so calibration, few-shot training and evaluation never
branch on the kind of model:

    word_logprobs(prompts, words, soft_prompt=None) -> Tensor[B, W]

`soft_prompt` ([n, hidden], optional) is spliced into the input embeddings right after the
model's leading special tokens; gradients flow to it when the caller is not in inference mode.

    models.py, aliases.py    loading by alias, folder or hub id; dtypes, devices, fingerprints, GGUF conversion
    mlm.py, causal.py        the two backends; inputs.py: their token-level helpers
    scoring.py, calibration.py, cached.py, batching.py   label scores, calibration, shared scores, batch sizes
    features.py, sentence_encoders.py, universal_encoder.py, embedding_cache.py   sentence features
    attention.py             the attention kernel of half-precision training on the CPU
    word_checks.py           label words as a tokenizer reads them (`templates check`)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:  # the package stays torch-free to import: the CLI's light commands read aliases and calibrations
    import torch

    from promptlab.catalog.template import Prompt


class Backend(Protocol):
    kind: str
    model: torch.nn.Module
    tokenizer: object
    device: torch.device

    def word_logprobs(self, prompts: Sequence[Prompt], words: Sequence[str],
                      soft_prompt: torch.Tensor | None = None) -> torch.Tensor: ...

    def prompt_length(self, prompt: Prompt) -> int: ...

    def word_tokens(self, prompt: Prompt, word: str) -> list[int]: ...


def make_backend(model, tokenizer, kind: str, device: torch.device, *, max_length: int | None = None) -> Backend:
    if kind == "mlm":
        from promptlab.backends.mlm import MaskedLMBackend
        return MaskedLMBackend(model, tokenizer, device, max_length=max_length)
    from promptlab.backends.causal import CausalLMBackend
    return CausalLMBackend(model, tokenizer, device, max_length=max_length)
