"""Frozen encoders' embeddings, kept on disk so that every seed, k and frozen-feature method reuses them.

A frozen encoder gives a text the same row every time, so the row is computed once: the cache holds,
per encoder (its weights' fingerprint, its modules and its precision), shards of (text digest, row)
written atomically; a call encodes only the texts no shard has yet and adds them in new shards of up to SHARD_TEXTS.
A fine-tuned encoder (setfit) must not be cached: its weights no longer match the fingerprint it was
loaded with.
"""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from promptlab.paths import cache_dir
from promptlab.runtime.outputs import write_atomic

DIGEST_BYTES = 16  # blake2b per text: collisions are out of reach at any dataset size
SHARD_TEXTS = 1024


def encoder_key(fingerprint: str, model: Any) -> str:
    """What a row depends on besides the text: the weights, the modules around them, the precision."""
    modules = repr(model) if hasattr(model, "named_modules") else type(model).__name__
    precision = str(getattr(model, "dtype", ""))
    return hashlib.sha256(f"{fingerprint}\n{modules}\n{precision}".encode()).hexdigest()[:20]


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """[N, DIGEST_BYTES] uint8: each text's digest."""
    rows = [hashlib.blake2b(text.encode(), digest_size=DIGEST_BYTES).digest() for text in texts]
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(texts), DIGEST_BYTES)


def cached_rows(key: str, texts: Sequence[str], encode) -> np.ndarray:
    """`encode(texts)`'s rows, [N, dim] float32, taking every row the cache of `key` already has."""
    from safetensors.numpy import load_file, save

    if not texts:
        return np.asarray(encode([]), dtype=np.float32)
    folder = cache_dir("embeddings", key)
    digests = text_digests(texts)
    known: dict[bytes, np.ndarray] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        arrays = load_file(str(shard))
        known.update(zip(map(bytes, arrays["digests"]), arrays["rows"]))
    # each text the cache lacks, once even when repeated
    missing = list({bytes(digest): index for index, digest in enumerate(digests)
                    if bytes(digest) not in known}.values())
    for start in range(0, len(missing), SHARD_TEXTS):  # shard by shard: a run stopped midway keeps what it did
        chunk = missing[start:start + SHARD_TEXTS]
        rows = np.asarray(encode([texts[index] for index in chunk]), dtype=np.float32)
        _write_shard(folder, save({"digests": digests[chunk], "rows": rows}))
        known.update(zip(map(bytes, digests[chunk]), rows))
    return np.stack([known[bytes(digest)] for digest in digests])


def _write_shard(folder: Path, data: bytes) -> None:
    # a fresh name per shard: concurrent runs each add theirs, none overwrites another's
    write_atomic(folder / f"{uuid.uuid4().hex}.safetensors", data)
