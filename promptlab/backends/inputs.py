"""Token-level helpers shared by the backends: splitting whitespace, padding, soft prompts."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch

from promptlab.catalog.template import Prompt, split_trailing_space


TOKEN_CACHE_CHARACTERS = 20_000_000  # ~10 bytes of memory per cached character: key, token ids, their objects


class PromptTokens:
    """Tokenization shared by the backends, memoised: each distinct text is tokenized once per run, as long as
    the texts used since fit TOKEN_CACHE_CHARACTERS (least recently used out first). Bounded in characters, not
    texts: a server meeting ever new texts, of any length up to its limit, holds a bounded amount."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._cached_characters = 0

    def _tokens(self, text: str) -> tuple[int, ...]:
        if text in self._cache:
            self._cache.move_to_end(text)
            return self._cache[text]
        tokens = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else ()
        self._cache[text] = tokens
        self._cached_characters += len(text)
        while self._cached_characters > TOKEN_CACHE_CHARACTERS:
            self._cached_characters -= len(self._cache.popitem(last=False)[0])
        return tokens

    def word_tokens(self, prompt: Prompt, word: str) -> list[int]:
        """The word's tokens as the tokenizer reads them right after the context.

        Context and word (carrying the whitespace the template put before the slot) are encoded
        together and split where the context's own tokens end, as lm-evaluation-harness does: a
        SentencePiece tokenizer encoding the word alone would read `Answer:{{ mask }}` as
        "Answer: great". Where the tokenizer merges across that boundary (no whitespace before the
        slot; `templates check --model` warns), the word is encoded alone.
        """
        split = self._split_at_context(prompt, word)
        return list(split if split is not None else self._tokens(split_trailing_space(prompt.before)[1] + word))

    def merges_at_slot(self, prompt: Prompt, word: str) -> bool:
        """Whether the tokenizer merges the end of the context and the word into shared tokens."""
        return self._split_at_context(prompt, word) is None

    def _split_at_context(self, prompt: Prompt, word: str) -> tuple[int, ...] | None:
        context, space = split_trailing_space(prompt.before)
        together, alone = self._tokens(context + space + word), self._tokens(context)
        if together[:len(alone)] == alone and len(together) > len(alone):
            return together[len(alone):]
        return None

    def context_tokens(self, prompt: Prompt) -> list[int]:
        """The text before the slot, its trailing whitespace left to the word."""
        return list(self._tokens(split_trailing_space(prompt.before)[0]))


def pad(rows: Sequence[Sequence[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token rows into ids [B, T] and an attention mask [B, T]."""
    width = max(len(row) for row in rows)
    fill = [width - len(row) for row in rows]
    if left:
        ids = [[pad_id] * n + list(row) for n, row in zip(fill, rows)]
        mask = [[0] * n + [1] * len(row) for n, row in zip(fill, rows)]
    else:
        ids = [list(row) + [pad_id] * n for n, row in zip(fill, rows)]
        mask = [[1] * len(row) + [0] * n for n, row in zip(fill, rows)]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits)[..., tokens] without materialising the log-softmax over the vocabulary.

    logits [..., V] and tokens [..., K] -> [..., K], in float32 whatever the model's dtype.
    """
    logits = logits.float()
    return logits.gather(-1, tokens) - logits.logsumexp(-1, keepdim=True)


def embed(model: torch.nn.Module, ids: torch.Tensor, soft_slots: torch.Tensor | None,
          soft_prompt: torch.Tensor | None) -> torch.Tensor:
    """Input embeddings [B, T, H] with the soft prompt written into its slots."""
    embeddings = model.get_input_embeddings()(ids)
    if soft_prompt is None:
        return embeddings
    rows = soft_slots.sum(dim=1)
    assert bool((rows == soft_prompt.shape[0]).all()), "every row holds the soft prompt once"
    filler = soft_prompt.to(embeddings.dtype).unsqueeze(0).expand(ids.shape[0], -1, -1)
    return embeddings.masked_scatter(soft_slots.unsqueeze(-1), filler.reshape(-1, filler.shape[-1]))
