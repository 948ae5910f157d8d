"""Several frozen sentence encoders as one (`--encoder mpnet-base+use-multilingual`): each text's rows from
every encoder, each scaled to unit length, side by side.

Encoders trained on different data err on different messages, and a head on the joined rows weighs
them per intent: Banking77, k = 10, label words as rows, self-trained (docs/results.md).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from promptlab.errors import UserError

SEPARATOR = "+"


def joined_names(name: str) -> list[str] | None:
    """The encoder names `name` joins with '+', or None when it names one encoder (a folder whose own path
    holds a '+' is one encoder)."""
    if SEPARATOR not in name or Path(name).expanduser().exists():
        return None
    names = [part.strip() for part in name.split(SEPARATOR)]
    if not all(names):
        raise UserError(f"encoder '{name}' joins an empty name: each '+' stands between two encoder names",
                        fix="e.g. --encoder mpnet-base+use-multilingual")
    return names


def join_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    """[N, sum of the encoders' dimensions] float32: each encoder's rows at unit length, in the order given."""
    scaled = []
    for block in rows:
        block = np.asarray(block, dtype=np.float32)
        scaled.append(block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), np.float32(1e-12)))
    return np.concatenate(scaled, axis=1)


def joined_fingerprint(fingerprints: Sequence[str]) -> str:
    return hashlib.sha256(SEPARATOR.join(fingerprints).encode()).hexdigest()[:16]


class JoinedEncoders:
    """The slice of SentenceTransformer's interface promptlab's encoders use, over several frozen encoders."""
    tokenizer = None  # each encoder tokenizes for itself

    def __init__(self, models: Sequence[Any]):
        self.models = list(models)
        self.device = self.models[0].device
        self.dtype = self.models[0].dtype

    def encode(self, texts: Sequence[str], **options) -> np.ndarray:
        return join_rows([model.encode(list(texts), **options) for model in self.models])

    def eval(self) -> "JoinedEncoders":
        return self
