"""A toy few-shot task and tiny models whose outputs depend on their input, for training tests.

The conftest's tiny models are initialised like real ones (std 0.02), so at 32 dimensions their
output barely depends on the context and no prompt can separate anything. `sensitive_model`
re-draws every weight matrix with a larger std: still random, but the context matters, so a
soft prompt can learn the (separable) toy task.
"""
from __future__ import annotations

from pathlib import Path

import torch

POSITIVE = ("great", "love", "excellent", "fun", "good")
NEGATIVE = ("terrible", "hate", "awful", "boring", "bad")


def _rows(copies: int, start: int, before: str = "") -> str:
    rows = [(word, "positive") for word in POSITIVE] + [(word, "negative") for word in NEGATIVE]
    return "".join(f'{{"id": "e{start + i}", "text": "{before}{word}", "label": "{label}"}}\n'
                   for i, (word, label) in enumerate(rows * copies))


TOY_FILES = {
    "tasks/toy.yaml": "labels: [negative, positive]\ndata: {train: data/train.jsonl, test: data/test.jsonl}\n",
    "templates/toy/t1.jinja": "{{ text }} it was {{ mask }}",
    "templates/toy/t2.jinja": "{{ text }}! all in all {{ mask }}",
    "verbalizers/toy/default.yaml": "labels:\n  negative: [bad, awful]\n  positive: [good, great]\n",
    "tasks/data/train.jsonl": _rows(copies=4, start=0),  # 20 per class
    "tasks/data/test.jsonl": _rows(copies=1, start=1000, before="really "),  # 5 per class, texts not in train
}


def sensitive_model(source: Path, target: Path, *, std: float = 0.3, seed: int = 0) -> Path:
    """A copy of the tiny model at `source` with every weight matrix redrawn from N(0, std)."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoTokenizer,
    )

    config = AutoConfig.from_pretrained(source)
    auto = AutoModelForMaskedLM if config.architectures[0].endswith("ForMaskedLM") else AutoModelForCausalLM
    model = auto.from_pretrained(source)
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0, std)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target

