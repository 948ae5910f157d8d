"""Masked-LM (cloze) backend with exact multi-token scoring, PET style.

A word of n tokens gets n mask tokens in the slot. Its log-probability is filled in n steps:
at each step the model reads all still-masked positions, the position whose target token is
most probable is scored and filled with that token, and the rest are read again with it in
place (Schick & Schütze's decoding, scored for a fixed target). One token is exactly one
forward; words of the same length are batched together, one forward per step.

The LM head runs only at mask positions: the encoder's hidden states are gathered there first.
Text that does not fit is cut from the start of the text before the slot and the end of the
text after it, so the slot and its neighbourhood always survive.
"""
from __future__ import annotations

from typing import Sequence

import torch

from promptlab.backends.attention import attention_for_gradients
from promptlab.backends.inputs import PromptTokens, embed, pad, token_logprobs
from promptlab.catalog.template import Prompt


def split_lm_head(model) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(encoder, head) when the model is an encoder plus one head module, else (model, None)."""
    encoder = getattr(model, model.base_model_prefix, None)
    heads = [module for name, module in model.named_children() if name != model.base_model_prefix]
    if encoder is None or len(heads) != 1:
        return model, None
    return encoder, heads[0]


class MaskedLMBackend(PromptTokens):
    kind = "mlm"

    def __init__(self, model, tokenizer, device: torch.device, *, max_length: int | None = None):
        super().__init__(tokenizer)
        self.model, self.device = model, device
        self.mask_id = tokenizer.mask_token_id
        self.open = [tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id]
        self.close = [tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        positions = getattr(model.config, "max_position_embeddings", 512) - 2  # RoBERTa offsets positions by 2
        self.max_length = max_length or min(tokenizer.model_max_length, positions)
        self.encoder, self.head = split_lm_head(model)

    def prompt_length(self, prompt: Prompt) -> int:
        return len(self.context_tokens(prompt)) + len(self._tokens(prompt.after))

    def _row(self, prompt: Prompt, answer: list[int], n_soft: int) -> tuple[list[int], list[int], int]:
        """Token ids, soft-prompt slot flags, and where the answer starts."""
        before = self.context_tokens(prompt)
        after = list(self._tokens(prompt.after))
        room = self.max_length - len(self.open) - len(self.close) - n_soft - len(answer)
        overflow = max(0, len(before) + len(after) - room)
        cut_before = min(overflow, len(before))
        before, after = before[cut_before:], after[:len(after) - (overflow - cut_before)]
        ids = self.open + [self.pad_id] * n_soft + before + answer + after + self.close
        slots = [0] * len(self.open) + [1] * n_soft + [0] * (len(ids) - len(self.open) - n_soft)
        return ids, slots, len(self.open) + n_soft + len(before)

    def _inputs(self, rows: list[tuple[list[int], list[int], int]]) -> tuple[torch.Tensor, ...]:
        """Right-padded ids, attention mask and soft-prompt slots on the device, and each answer's start."""
        ids, attention = pad([row[0] for row in rows], self.pad_id, left=False)
        soft_slots = pad([row[1] for row in rows], 0, left=False)[0].bool()
        starts = torch.tensor([row[2] for row in rows])
        return tuple(tensor.to(self.device) for tensor in (ids, attention, soft_slots, starts))

    def _mask_logits(self, ids, attention, soft_slots, positions, soft_prompt) -> torch.Tensor:
        """Logits at the given positions only: [R, P, V]."""
        inputs = embed(self.model, ids, soft_slots, soft_prompt)
        if self.head is None:
            logits = self.model(inputs_embeds=inputs, attention_mask=attention).logits
            return logits.gather(1, positions.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        hidden = self.encoder(inputs_embeds=inputs, attention_mask=attention).last_hidden_state
        return self.head(hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1])))

    def word_logprobs(self, prompts: Sequence[Prompt], words: Sequence[str],
                      soft_prompt: torch.Tensor | None = None) -> torch.Tensor:
        n_soft = 0 if soft_prompt is None else soft_prompt.shape[0]
        targets = [[self.word_tokens(prompt, word) for word in words] for prompt in prompts]
        scores = torch.zeros(len(prompts), len(words), device=self.device)
        with attention_for_gradients(self.model):
            lengths = sorted({len(tokens) for row in targets for tokens in row})
            for length in lengths:
                pairs = [(b, w) for b, row in enumerate(targets)
                         for w, tokens in enumerate(row) if len(tokens) == length]
                if length == 1:
                    scores = scores + self._single_token(prompts, targets, pairs, n_soft, soft_prompt)
                else:
                    scores = scores + self._multi_token(prompts, targets, pairs, length, n_soft, soft_prompt)
        return scores

    def slot_logprobs(self, prompts: Sequence[Prompt]) -> torch.Tensor:
        """log p(token at the slot) over the whole vocabulary, one mask in the slot: [B, V], float32.

        The distribution that scores every single-token word in `word_logprobs`, from the same input.
        """
        return self._one_mask_logits(prompts, 0, None).log_softmax(-1)

    def _one_mask_logits(self, prompts: Sequence[Prompt], n_soft: int, soft_prompt) -> torch.Tensor:
        """Logits at the slot holding one mask token: [B, V], float32."""
        ids, attention, soft_slots, starts = self._inputs([self._row(prompt, [self.mask_id], n_soft)
                                                           for prompt in prompts])
        return self._mask_logits(ids, attention, soft_slots, starts.unsqueeze(1), soft_prompt)[:, 0].float()

    def _single_token(self, prompts, targets, pairs, n_soft, soft_prompt) -> torch.Tensor:
        """All one-token words of an example share one input with a single mask: one forward."""
        examples = sorted({b for b, _ in pairs})
        logits = self._one_mask_logits([prompts[b] for b in examples], n_soft, soft_prompt)
        where = {b: i for i, b in enumerate(examples)}
        row_index = torch.tensor([where[b] for b, _ in pairs], device=self.device)
        token_index = torch.tensor([targets[b][w][0] for b, w in pairs], device=self.device)
        picked = logits[row_index, token_index] - logits.logsumexp(-1)[row_index]
        return _scatter(picked, pairs, len(prompts), len(targets[0]))

    def _multi_token(self, prompts, targets, pairs, length, n_soft, soft_prompt) -> torch.Tensor:
        """PET decoding: fill the most probable remaining target token first, `length` forwards.

        Step s reads only the length - s positions still masked, so the head and the softmax
        over the vocabulary run on half the positions overall.
        """
        ids, attention, soft_slots, starts = self._inputs([self._row(prompts[b], [self.mask_id] * length, n_soft)
                                                           for b, _ in pairs])
        rows = torch.arange(len(pairs), device=self.device)
        masked = torch.arange(length, device=self.device).repeat(len(pairs), 1)  # [R, still masked]: answer offsets
        wanted = torch.tensor([targets[b][w] for b, w in pairs], device=self.device)  # [R, L]
        totals = torch.zeros(len(pairs), device=self.device)
        for remaining in range(length, 0, -1):
            positions = starts.unsqueeze(1) + masked
            logits = self._mask_logits(ids, attention, soft_slots, positions, soft_prompt)  # [R, remaining, V]
            target_logprobs = token_logprobs(logits, wanted.gather(1, masked).unsqueeze(-1)).squeeze(-1)
            choice = target_logprobs.detach().argmax(1)  # [R]: index into the still-masked offsets
            totals = totals + target_logprobs[rows, choice]
            ids = ids.index_put((rows, positions[rows, choice]), wanted[rows, masked[rows, choice]])
            keep = torch.ones_like(masked, dtype=torch.bool).index_put((rows, choice), torch.tensor(False))
            masked = masked[keep].view(len(pairs), remaining - 1)
        return _scatter(totals, pairs, len(prompts), len(targets[0]))


def _scatter(values: torch.Tensor, pairs: list[tuple[int, int]], n_examples: int, n_words: int) -> torch.Tensor:
    """[B, W] scores holding values[i] at pairs[i] = (example, word), zero elsewhere."""
    out = torch.zeros(n_examples * n_words, device=values.device, dtype=values.dtype)
    flat = torch.tensor([b * n_words + w for b, w in pairs], device=values.device)
    return out.index_add(0, flat, values).view(n_examples, n_words)
