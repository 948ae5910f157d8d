"""Which attention kernel a half-precision forward on the CPU uses while gradients flow through it.

PyTorch's fused CPU attention (SDPA) runs a bfloat16 forward fast, but its backward is slower
than float32's: on an Intel Xeon with AMX (torch 2.13) one SmolLM2 attention block took 27 ms
backward under SDPA against 6 ms with transformers' eager attention (matrix products and a
softmax), and so every trained method's bfloat16 step ran no faster than float32. Training forwards
in half precision on the CPU therefore use eager attention; inference keeps SDPA.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

HALF = (torch.bfloat16, torch.float16)


@contextlib.contextmanager
def attention_for_gradients(model) -> Iterator[None]:
    """Inside the block the model runs eager attention if gradients flow through a CPU half-precision forward."""
    if not _slow_backward(model):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation("sdpa")


def _slow_backward(model) -> bool:
    half = model.dtype in HALF or torch.is_autocast_enabled("cpu")
    return (torch.is_grad_enabled() and half and model.device.type == "cpu"
            and getattr(model.config, "_attn_implementation", None) == "sdpa")
