"""Token-level helpers shared by the backends: splitting whitespace, padding, soft prompts."""
from __future__ import annotations

import re
from typing import Sequence

import torch

_TRAILING_SPACE = re.compile(r"\s*\Z")


def split_trailing_space(text: str) -> tuple[str, str]:
    """('It was ', ) -> ('It was', ' '): the space belongs to the answer's first token."""
    space = _TRAILING_SPACE.search(text).group(0)
    return text[: len(text) - len(space)], space


def pad(rows: Sequence[Sequence[int]], pad_id: int, *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token rows into ids [B, T] and an attention mask [B, T]."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


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
