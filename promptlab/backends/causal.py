"""Causal-LM backend: log p(word | text before the answer slot), summed over the word's tokens.

The text after the slot is not scored: a causal LM reads left to right, so it cannot condition
the answer on it, and scoring it after every candidate would multiply the cost by the number of
words for a term that calibration largely cancels. Templates for causal models therefore end
at the slot or put only punctuation after it.

Cost: one forward over each context (left-padded, logits only at the last position) gives every
word's first token; words of several tokens continue from that forward's KV cache, so the
context is encoded once whatever the number of labels.
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch
from transformers import DynamicCache

from promptlab.backends.inputs import embed, pad, split_trailing_space
from promptlab.template import Prompt

_CONTINUATION_ROWS = 256  # (example, word) rows per continuation forward; bounds the copied KV cache


class CausalLMBackend:
    kind = "causal"

    def __init__(self, model, tokenizer, device: torch.device, *, max_length: int | None = None):
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        bos = tokenizer.bos_token_id
        self.start = [bos] if bos is not None and getattr(tokenizer, "add_bos_token", False) else []
        self.empty_context = self.start or [bos if bos is not None else tokenizer.eos_token_id]
        self.max_length = max_length or getattr(model.config, "max_position_embeddings", 2048)
        self._tokens = functools.lru_cache(maxsize=200_000)(self._tokenize)

    def _tokenize(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else ()

    def word_tokens(self, prompt: Prompt, word: str) -> list[int]:
        """The word's tokens, carrying the whitespace that the template put before the slot."""
        return list(self._tokens(split_trailing_space(prompt.before)[1] + word))

    def prompt_length(self, prompt: Prompt) -> int:
        return len(self._tokens(split_trailing_space(prompt.before)[0]))

    def _context(self, prompt: Prompt, budget: int) -> list[int]:
        tokens = list(self._tokens(split_trailing_space(prompt.before)[0]))
        if not tokens:
            return list(self.empty_context)
        return self.start + tokens[-(budget - len(self.start)):]  # truncate from the left

    def word_logprobs(self, prompts: Sequence[Prompt], words: Sequence[str],
                      soft_prompt: torch.Tensor | None = None) -> torch.Tensor:
        n_soft = 0 if soft_prompt is None else soft_prompt.shape[0]
        targets = [[self.word_tokens(prompt, word) for word in words] for prompt in prompts]
        longest = max(len(tokens) for row in targets for tokens in row)
        budget = self.max_length - n_soft - longest
        contexts = [self._context(prompt, budget) for prompt in prompts]
        rows = [context[:len(self.start)] + [self.pad_id] * n_soft + context[len(self.start):] for context in contexts]
        slots = [[0] * len(self.start) + [1] * n_soft + [0] * (len(context) - len(self.start)) for context in contexts]
        ids, mask = pad(rows, self.pad_id, left=True)
        soft_slots = pad(slots, 0, left=True)[0].bool().to(self.device)
        ids, mask = ids.to(self.device), mask.to(self.device)
        output = self.model(inputs_embeds=embed(self.model, ids, soft_slots, soft_prompt), attention_mask=mask,
                            position_ids=(mask.cumsum(1) - 1).clamp(min=0), use_cache=longest > 1,
                            logits_to_keep=1)
        last = output.logits[:, -1].float().log_softmax(-1)  # [B, V]
        first_tokens = torch.tensor([[tokens[0] for tokens in row] for row in targets], device=self.device)
        scores = last.gather(1, first_tokens)  # [B, W]
        if longest > 1:
            scores = scores + self._continuation_logprobs(output.cache, mask, targets)
        return scores

    def _continuation_logprobs(self, cache, mask: torch.Tensor, targets: list[list[list[int]]]) -> torch.Tensor:
        """log p(tokens 2..n | context, token 1..) of every word with more than one token: [B, W]."""
        pairs = [(b, w) for b, row in enumerate(targets) for w, tokens in enumerate(row) if len(tokens) > 1]
        totals = torch.zeros(len(targets), len(targets[0]), device=self.device)
        for start in range(0, len(pairs), _CONTINUATION_ROWS):
            chunk = pairs[start:start + _CONTINUATION_ROWS]
            rows = torch.tensor([b for b, _ in chunk], device=self.device)
            inputs, input_mask = pad([targets[b][w][:-1] for b, w in chunk], self.pad_id, left=False)
            labels, _ = pad([targets[b][w][1:] for b, w in chunk], 0, left=False)
            inputs, input_mask, labels = inputs.to(self.device), input_mask.to(self.device), labels.to(self.device)
            chunk_cache = DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers])
            context_mask = mask[rows]
            positions = context_mask.sum(1, keepdim=True) + torch.arange(inputs.shape[1], device=self.device)
            logits = self.model(input_ids=inputs, attention_mask=torch.cat([context_mask, input_mask], dim=1),
                                position_ids=positions, cache=chunk_cache, use_cache=True).logits
            token_logprobs = logits.float().log_softmax(-1).gather(2, labels.unsqueeze(-1)).squeeze(-1)
            sums = (token_logprobs * input_mask).sum(1)
            flat = torch.tensor([b * totals.shape[1] + w for b, w in chunk], device=self.device)
            totals = totals.flatten().index_add(0, flat, sums).view_as(totals)
        return totals
