"""Causal-LM backend: log p(word | text before the answer slot), summed over the word's tokens.

The text after the slot is not scored: a causal LM reads left to right, so it cannot condition
the answer on it, and scoring it after every candidate would multiply the cost by the number of
words for a term that calibration largely cancels. Templates for causal models therefore end
at the slot or put only punctuation after it.

Cost: one forward per batch. Each row is the context, left-padded, followed by the label words'
tokens but their last, laid out as a trie: words that begin with the same tokens share them.

    [pad pad ctx ctx ctx | card | arrival | pin | top | up ]     card arrival / card pin / top up / ...

A custom attention mask lets each trie node see the context and its own ancestors only, and its
position id is the context length plus its depth, so each token is read exactly as in its own
sequence `ctx + word`. The context is encoded once whatever the number of labels; with many
intents that share their first words ("card ...", "top up ...") each shared prefix is read once
too. Logits are computed only for the last context position and the trie nodes. Single-token
verbalizers need no mask: the plain padded forward with logits at the last position only. Very
long label sets are split into groups of words, one forward each.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from promptlab.backends.attention import attention_for_gradients
from promptlab.backends.inputs import PromptTokens, embed, pad, token_logprobs
from promptlab.catalog.template import Prompt

_PACKED_TOKENS = 512  # word tokens packed behind one context; more labels take further forwards


@dataclass
class _Packed:
    """A batch laid out for one forward: ids, attention and positions, and where each word is read."""

    ids: torch.Tensor  # [B, T]
    soft_slots: torch.Tensor  # [B, T] bool
    attention: torch.Tensor  # [B, T] padding mask, or [B, 1, T, T] when words are packed
    positions: torch.Tensor  # [B, T]
    first: torch.Tensor  # [B, W]: every word's first token, read at the last context position
    pair_node: torch.Tensor  # [B, P]: for each later word token, the trie node that predicts it (0: padding)
    pair_target: torch.Tensor  # [B, P]: that token
    pair_word: torch.Tensor  # [B, P]: the word it belongs to (W for padding)
    tail: torch.Tensor  # [B, G]: which of the trie positions after the context are real nodes

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
        with attention_for_gradients(self.model):  # the packed mask depends on the kernel
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
            return _Packed(ids, soft_slots, mask, positions, first, nothing, nothing, nothing, nothing).to(self.device)
        tail_ids, tail_real = pad([r.inputs for r in rows], self.pad_id, left=False)
        tail_positions = (mask.sum(1, keepdim=True) + pad([r.depths for r in rows], 0, left=False)[0]) * tail_real
        ancestors = torch.zeros(len(rows), tail_ids.shape[1], tail_ids.shape[1], dtype=torch.bool)
        for index, row in enumerate(rows):
            for node, parent in enumerate(row.parents):
                if parent >= 0:
                    ancestors[index, node] = ancestors[index, parent]
                ancestors[index, node, node] = True
        return _Packed(ids=torch.cat([ids, tail_ids], dim=1),
                       soft_slots=torch.cat([soft_slots, torch.zeros_like(tail_real, dtype=torch.bool)], dim=1),
                       attention=self._packed_attention(mask.bool().to(self.device), tail_real.bool().to(self.device),
                                                        ancestors.to(self.device)),
                       positions=torch.cat([positions, tail_positions], dim=1), first=first,
                       pair_node=pad([r.pair_node for r in rows], 0, left=False)[0],
                       pair_target=pad([r.pair_target for r in rows], 0, left=False)[0],
                       pair_word=pad([r.pair_word for r in rows], n_words, left=False)[0],
                       tail=tail_real.bool()).to(self.device)

    def _packed_attention(self, context: torch.Tensor, tail: torch.Tensor, ancestors: torch.Tensor) -> torch.Tensor:
        """[B, 1, T, T]: a context token sees the earlier context; a trie node, the context and its ancestors.

        `context` [B, C] and `tail` [B, G] mark real tokens; `ancestors` [B, G, G] says which nodes a
        node sees (itself included). Padding sees only itself, so no row is empty (NaN in SDPA).
        """
        batch, n_context, n_tail = context.shape[0], context.shape[1], tail.shape[1]
        order = torch.arange(n_context, device=context.device)
        context_rows = (order[None, :, None] >= order[None, None, :]) & context[:, None, :]
        tail_rows = torch.cat([context[:, None, :] & tail[:, :, None], ancestors], dim=2)
        visible = torch.cat([torch.cat([context_rows, context.new_zeros(batch, n_context, n_tail)], dim=2),
                             tail_rows], dim=1)
        visible = (visible | torch.eye(n_context + n_tail, dtype=torch.bool, device=context.device)).unsqueeze(1)
        if getattr(self.model.config, "_attn_implementation", "sdpa") != "eager":
            return visible  # SDPA and flex take a boolean mask: True = attend
        dtype = self.model.dtype
        return torch.zeros(visible.shape, dtype=dtype, device=visible.device).masked_fill(
            ~visible, torch.finfo(dtype).min)

    def slot_logprobs(self, prompts: Sequence[Prompt]) -> torch.Tensor:
        """log p(token | text before the slot) over the whole vocabulary: [B, V], float32.

        The distribution that scores every word's first token in `word_logprobs`, read from the same
        forward (the same left-truncated context, padding and positions), so a single-token word's
        score is its token's column here.
        """
        contexts = [self._with_soft_slots(self._context(prompt, self.max_length - 1), 0) for prompt in prompts]
        packed = self._pack(contexts, [[[self.pad_id]] for _ in prompts])  # one-token targets: the plain forward
        return self._logits(packed, None)[:, 0].float().log_softmax(-1)

    def _score(self, packed: _Packed, soft_prompt: torch.Tensor | None) -> torch.Tensor:
        """Sum of token log-probs per word: [B, W]."""
        logits = self._logits(packed, soft_prompt)  # [B, 1 + G, V]
        scores = token_logprobs(logits[:, 0], packed.first)  # [B, W]
        if packed.pair_node.shape[1] == 0:
            return scores
        nodes = logits[:, 1:].float()  # [B, G, V]
        rows = torch.arange(nodes.shape[0], device=nodes.device)[:, None]
        later = nodes[rows, packed.pair_node, packed.pair_target] - nodes.logsumexp(-1)[rows, packed.pair_node]
        totals = torch.zeros(scores.shape[0], scores.shape[1] + 1, device=scores.device, dtype=scores.dtype)
        return scores + totals.scatter_add(1, packed.pair_word, later)[:, :-1]  # the extra column takes padding

    def _logits(self, packed: _Packed, soft_prompt: torch.Tensor | None) -> torch.Tensor:
        """Logits at the last context position and at every trie node: [B, 1 + G, V]."""
        width = packed.ids.shape[1]
        # The kept positions as indices, not a count: the model then gathers them into a contiguous
        # tensor. A count slices a strided view, and with gradients on (training a soft prompt)
        # matmul does not fold such a view into one matrix product: it broadcasts the LM head's
        # weight over the batch, a copy of the vocabulary matrix per row, in the forward and backward.
        kept = torch.arange(width - packed.tail.shape[1] - 1, width, device=self.device)
        return self.model(inputs_embeds=embed(self.model, packed.ids, packed.soft_slots, soft_prompt),
                          attention_mask=packed.attention, position_ids=packed.positions, use_cache=False,
                          logits_to_keep=kept).logits


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
    """One row's label words but their last tokens, as a trie: a shared prefix is one chain of nodes."""

    inputs: list[int]  # each node's token
    parents: list[int]  # its parent node, -1 under the context
    depths: list[int]  # its position after the context
    pair_node: list[int]  # for each word token after the first: the node whose output predicts it,
    pair_target: list[int]  # the token,
    pair_word: list[int]  # and its word


def _continuation(words: list[list[int]]) -> _Continuation:
    row = _Continuation([], [], [], [], [], [])
    node_of: dict[tuple[int, int], int] = {}  # (parent, token) -> node
    for index, tokens in enumerate(words):
        parent = -1
        for depth, (token, target) in enumerate(zip(tokens[:-1], tokens[1:])):
            if (parent, token) not in node_of:
                node_of[parent, token] = len(row.inputs)
                row.inputs.append(token)
                row.parents.append(parent)
                row.depths.append(depth)
            parent = node_of[parent, token]
            row.pair_node.append(parent)
            row.pair_target.append(target)
            row.pair_word.append(index)
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
