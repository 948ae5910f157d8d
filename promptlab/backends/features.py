"""Sentence features from a language model: mean-pooled hidden states of an example's own text.

Used by the head baselines and by similarity-based demonstration selection. The text is the
example's fields that the template reads, in the order the template first uses them, without
the template's own words: these methods classify the example, not the prompt.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Sequence

import torch

from promptlab.backends.inputs import pad
from promptlab.catalog.template import Template

FEATURE_BATCH = 32
# model -> {(layer, text): features [hidden]}, least recently used first; entries go with the model
_FEATURES: weakref.WeakKeyDictionary[torch.nn.Module, OrderedDict[tuple[int, str], torch.Tensor]] = \
    weakref.WeakKeyDictionary()
# Texts kept per model: a suite's train pools and test sets fit (Banking77 is 12k texts), and a server that
# runs for weeks stays flat (50k texts of a 576-wide model are about 115 MB).
FEATURE_CACHE_TEXTS = 50_000
_MAX_FEATURE_TOKENS = 512  # sentence features need no more; keeps memory bounded for long documents


def example_text(template: Template, example: dict) -> str:
    """The example's template fields, in template order, one per line."""
    return "\n".join(str(example[name]) for name in template.fields_in_order())


def pooled_features(model, tokenizer, texts: Sequence[str], device: torch.device, *, layer: int = -1) -> torch.Tensor:
    """Mean of one layer's hidden states over each text's tokens: [N, hidden]. Differentiable."""
    limit = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", _MAX_FEATURE_TOKENS),
                _MAX_FEATURE_TOKENS)
    rows = [tokenizer(text, truncation=True, max_length=limit)["input_ids"] or [_fallback_token(tokenizer)]
            for text in texts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask = pad(rows, pad_id, left=False)  # right padding: real tokens keep positions 0..n-1
    ids, mask = ids.to(device), mask.to(device)
    output = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=layer != -1)
    hidden = output.last_hidden_state if layer == -1 else output.hidden_states[layer]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1)


def features_of(model, tokenizer, texts: Sequence[str], device: torch.device, *, layer: int = -1) -> torch.Tensor:
    """pooled_features for many texts, without gradients, on the CPU: [N, hidden].

    Memoised per model object, layer and text (the FEATURE_CACHE_TEXTS most recently used), so a run
    or a suite computes each text's features once however many k, seeds and methods read them. The
    model must stay as it is while in use: the shared, frozen model of a run (trained copies go
    through pooled_features). Texts not seen yet are computed in batches of similar length, which
    wastes little on padding.
    """
    cache = _FEATURES.setdefault(model, OrderedDict())
    found = {}
    for text in set(texts):
        if (layer, text) in cache:
            cache.move_to_end((layer, text))
            found[text] = cache[(layer, text)]
    missing = sorted(set(texts) - found.keys(), key=lambda text: (len(text), text))
    with torch.inference_mode():
        for start in range(0, len(missing), FEATURE_BATCH):
            batch = missing[start:start + FEATURE_BATCH]
            rows = pooled_features(model, tokenizer, batch, device, layer=layer).float().cpu()
            for text, row in zip(batch, rows):
                found[text] = cache[(layer, text)] = row
    while len(cache) > FEATURE_CACHE_TEXTS:
        cache.popitem(last=False)
    if not texts:
        return torch.empty(0, model.config.hidden_size)
    return torch.stack([found[text] for text in texts])


def _fallback_token(tokenizer) -> int:
    """Some token for an empty text, so every row has one to average."""
    for token in (tokenizer.bos_token_id, tokenizer.cls_token_id, tokenizer.eos_token_id):
        if token is not None:
            return token
    return 0
