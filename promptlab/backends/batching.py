"""Batch sizes that fit: start large, halve a batch that runs out of GPU memory, retry it, and keep
the size that fitted for every later batch.

Scores do not depend on the batch size (the backends are tested for it), so backing off changes
the speed of a run, never its numbers.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

AUTO = "auto"  # a size that suits the device, for the rows of a file or a data set
AUTO_MICRO_BATCHES = "auto-micro-batches"  # a size that suits the device, for serve's micro-batches
_AUTO_SIZES = {
    AUTO: {"cpu": 32, "cuda": 256},  # CPU throughput is flat beyond ~32 rows; GPUs want them full
    # A micro-batch holds a few dozen rows in arrival order: cut at 32 it leaves one forward of mixed lengths and a
    # small remainder; forwards of 12 pad less and cost a CPU no more per row (docs/serving.md measures it).
    AUTO_MICRO_BATCHES: {"cpu": 12, "cuda": 256},
}


def initial_batch_size(requested: int | str, device: torch.device) -> int:
    """An explicit size as given; an auto one is a size that suits the device, which back-off shrinks when needed.

    The two autos differ on a CPU only. They are not interchangeable for bfloat16 numbers: in bfloat16 a row's
    scores move slightly with the rows it shares a forward with.
    """
    if requested not in _AUTO_SIZES:
        return int(requested)
    sizes = _AUTO_SIZES[requested]
    return sizes.get(device.type, sizes["cpu"])


@dataclass
class BackOff:
    """Runs batches, splitting any that run out of memory into halves until they fit."""

    limit: int | None = None  # the largest size that fitted after an out-of-memory error; None: none seen

    def run(self, rows: Sequence[int], score: Callable[[list[int]], torch.Tensor]) -> list[torch.Tensor]:
        """score(chunk) over consecutive chunks of rows, in order, each at most the size that fits."""
        size = min(len(rows), self.limit or len(rows))
        pieces: list[torch.Tensor] = []
        start = 0
        while start < len(rows):
            chunk = list(rows[start:start + size])
            piece = _attempt(score, chunk)
            if piece is None:
                size = self.limit = size // 2
                _release_memory()
                continue
            pieces.append(piece)
            start += len(chunk)
        return pieces


def _attempt(score: Callable[[list[int]], torch.Tensor], chunk: list[int]) -> torch.Tensor | None:
    """score(chunk), or None when it ran out of memory and a smaller chunk may fit."""
    try:
        return score(chunk)
    except torch.OutOfMemoryError:
        if len(chunk) == 1:
            raise
        return None  # returning drops the traceback, and with it the failed batch's tensors


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
