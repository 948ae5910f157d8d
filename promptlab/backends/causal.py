"""Causal-LM backend: log p(word | text before the answer slot), summed over the word's tokens.

The text after the slot is not scored: a causal LM reads left to right, so it cannot condition
the answer on it, and scoring it after every candidate would multiply the cost by the number of
words for a term that calibration largely cancels. Templates for causal models therefore end
at the slot or put only punctuation after it.

Cost: one forward per batch. Each row is the context, left-padded, followed by every word's
tokens but its last, packed one word after another:

    [pad pad ctx ctx ctx | w1 w1 w1 | w2 | w3 w3]

A custom attention mask lets each word's tokens see the context and the earlier tokens of the
same word only, and position ids restart after the context for every word, so each token is
read exactly as in its own sequence `ctx + word`. The context is encoded once whatever the
number of labels, cost grows with the label tokens, and logits are computed only for the last
context position and the word tokens. Single-token verbalizers need no mask: the plain padded
forward with logits at the last position only. Very long label sets are split into groups of
words, one forward each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from promptlab.backends.inputs import PromptTokens, embed, pad, token_logprobs
from promptlab.template import Prompt

_PACKED_TOKENS = 512  # word tokens packed behind one context; more labels take further forwards
_PAD_SEGMENT, _CONTEXT_SEGMENT = -1, 0


@dataclass
class _Packed:
    """A batch laid out for one forward: ids, attention and positions, and where each word is read."""

    ids: torch.Tensor  # [B, T]
    soft_slots: torch.Tensor  # [B, T] bool
    attention: torch.Tensor  # [B, T] padding mask, or [B, 1, T, T] when words are packed
    positions: torch.Tensor  # [B, T]
    first: torch.Tensor  # [B, W]: every word's first token, read at the last context position
    later: torch.Tensor  # [B, G]: the token each packed word token predicts (0 for padding)
    word_of: torch.Tensor  # [B, G]: the word it belongs to (W for padding)

    def to(self, device: torch.device) -> "_Packed":
        return _Packed(*(getattr(self, name).to(device) for name in self.__dataclass_fields__))


class CausalLMBackend(PromptTokens):
    kind = "causal"

    def __init__(self, model, tokenizer, device: torch.device, *, max_length: int | None = None):
        super().__init__(tokenizer)
        self.model, self.device = model, device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        bos = tokenizer.bos_token_id
        self.start = start_tokens(tokenizer)
        self.empty_context = self.start or [bos if bos is not None else tokenizer.eos_token_id]
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)

    def prompt_length(self, prompt: Prompt) -> int:
        return len(self.context_tokens(prompt))

    def _context(self, prompt: Prompt, budget: int) -> list[int]:
        """The start tokens and the context's last tokens, `budget` tokens at most (never fewer than one)."""
        tokens = self.context_tokens(prompt)
        room = max(budget - len(self.start), 0)
        kept = tokens[len(tokens) - room:] if room else []  # truncate from the left
        return self.start + kept if kept else list(self.empty_context)

    def word_logprobs(self, prompts: Sequence[Prompt], words: Sequence[str],
                      soft_prompt: torch.Tensor | None = None) -> torch.Tensor:
        n_soft = 0 if soft_prompt is None else soft_prompt.shape[0]
        targets = [[self.word_tokens(prompt, word) for word in words] for prompt in prompts]
        longest = max(len(tokens) for row in targets for tokens in row)
        budget = self.max_length - n_soft - longest
        contexts = [self._with_soft_slots(self._context(prompt, budget), n_soft) for prompt in prompts]
        scores = torch.zeros(len(prompts), len(words), device=self.device)
        for group in _word_groups([max(len(row[w]) for row in targets) for w in range(len(words))]):
            packed = self._pack(contexts, [[row[w] for w in group] for row in targets])
            scores = scores.index_add(1, torch.tensor(group, device=self.device), self._score(packed, soft_prompt))
        return scores

    def _with_soft_slots(self, context: list[int], n_soft: int) -> tuple[list[int], list[int]]:
        """The context with n_soft placeholder tokens after the start tokens, and their flags."""
        start = len(self.start)
        ids = context[:start] + [self.pad_id] * n_soft + context[start:]
        return ids, [0] * start + [1] * n_soft + [0] * (len(context) - start)

    def _pack(self, contexts: list[tuple[list[int], list[int]]], targets: list[list[list[int]]]) -> _Packed:
        """Left-padded contexts, then each word's tokens but its last, right-padded to a common width."""
        ids, mask = pad([ids for ids, _ in contexts], self.pad_id, left=True)
        soft_slots = pad([slots for _, slots in contexts], 0, left=True)[0].bool()
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        first = torch.tensor([[tokens[0] for tokens in row] for row in targets])
        n_words = first.shape[1]
        rows = [_continuation(row) for row in targets]
        if not any(row.inputs for row in rows):  # single-token words: the plain padded forward
            nothing = torch.zeros(len(rows), 0, dtype=torch.long)
            return _Packed(ids, soft_slots, mask, positions, first, nothing, nothing).to(self.device)
        tail_ids, tail_real = pad([r.inputs for r in rows], self.pad_id, left=False)
        segments = torch.cat([torch.where(mask.bool(), _CONTEXT_SEGMENT, _PAD_SEGMENT),
                              pad([r.segments for r in rows], _PAD_SEGMENT, left=False)[0]], dim=1)
        tail_positions = (mask.sum(1, keepdim=True) + pad([r.offsets for r in rows], 0, left=False)[0]) * tail_real
        return _Packed(ids=torch.cat([ids, tail_ids], dim=1),
                       soft_slots=torch.cat([soft_slots, torch.zeros_like(tail_real, dtype=torch.bool)], dim=1),
                       attention=self._packed_attention(segments.to(self.device)),
                       positions=torch.cat([positions, tail_positions], dim=1), first=first,
                       later=pad([r.labels for r in rows], 0, left=False)[0],
                       word_of=pad([r.words for r in rows], n_words, left=False)[0]).to(self.device)

    def _packed_attention(self, segments: torch.Tensor) -> torch.Tensor:
        """[B, 1, T, T]: a token sees earlier context tokens and earlier tokens of its own word.

        Padding sees only itself, so no row is empty (an empty row gives NaN in SDPA).
        """
        order = torch.arange(segments.shape[1], device=segments.device)
        earlier = order[None, :, None] >= order[None, None, :]  # [1, query, key]
        query, key = segments[:, :, None], segments[:, None, :]
        visible = earlier & (key != _PAD_SEGMENT) & ((key == _CONTEXT_SEGMENT) | (key == query))
        visible = (visible | (order[:, None] == order[None, :])).unsqueeze(1)
        if getattr(self.model.config, "_attn_implementation", "sdpa") != "eager":
            return visible  # SDPA and flex take a boolean mask: True = attend
        dtype = self.model.dtype
        return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(
            ~visible, torch.finfo(dtype).min)

    def _score(self, packed: _Packed, soft_prompt: torch.Tensor | None) -> torch.Tensor:
        """Sum of token log-probs per word: [B, W]."""
        width = packed.ids.shape[1]
        # The kept positions as indices, not a count: the model then gathers them into a contiguous
        # tensor. A count slices a strided view, and with gradients on (training a soft prompt)
        # matmul does not fold such a view into one matrix product: it broadcasts the LM head's
        # weight over the batch, a copy of the vocabulary matrix per row, in the forward and backward.
        kept = torch.arange(width - packed.later.shape[1] - 1, width, device=self.device)
        logits = self.model(inputs_embeds=embed(self.model, packed.ids, packed.soft_slots, soft_prompt),
                            attention_mask=packed.attention, position_ids=packed.positions, use_cache=False,
                            logits_to_keep=kept).logits  # [B, 1 + G, V]
        scores = token_logprobs(logits[:, 0], packed.first)  # [B, W]
        if packed.later.shape[1] == 0:
            return scores
        later = token_logprobs(logits[:, 1:], packed.later.unsqueeze(-1)).squeeze(-1)  # [B, G]
        totals = torch.zeros(scores.shape[0], scores.shape[1] + 1, device=scores.device, dtype=scores.dtype)
        return scores + totals.scatter_add(1, packed.word_of, later)[:, :-1]  # the extra column takes padding


def start_tokens(tokenizer) -> list[int]:
    """The tokens the tokenizer puts before any text (a BOS), read from its actual output.

    Tokenizers add BOS in different ways (a flag, a post-processor template), so ask what it does.
    """
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    special = tokenizer("a", add_special_tokens=True)["input_ids"]
    for offset in range(len(special) - len(plain) + 1):
        if special[offset:offset + len(plain)] == plain:
            return special[:offset]
    return []


@dataclass
class _Continuation:
    """One row's packed word tokens: inputs, their segment, position offset, label and word."""

    inputs: list[int]
    segments: list[int]
    offsets: list[int]
    labels: list[int]
    words: list[int]


def _continuation(words: list[list[int]]) -> _Continuation:
    row = _Continuation([], [], [], [], [])
    for index, tokens in enumerate(words):
        for offset, (token, label) in enumerate(zip(tokens[:-1], tokens[1:])):
            row.inputs.append(token)
            row.segments.append(index + 1)  # segment 0 is the context
            row.offsets.append(offset)
            row.labels.append(label)
            row.words.append(index)
    return row


def _word_groups(lengths: list[int]) -> list[list[int]]:
    """Word indices in groups whose packed tokens (all but each word's last) fit one forward."""
    groups, used = [[]], 0
    for index, length in enumerate(lengths):
        if groups[-1] and used + length - 1 > _PACKED_TOKENS:
            groups.append([])
            used = 0
        groups[-1].append(index)
        used += length - 1
    return groups
