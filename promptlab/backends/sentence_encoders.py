"""Sentence encoders: the feature models of `head --encoder` and `setfit`, run through sentence-transformers.

`--encoder` takes an alias (`minilm-l6`, or any LM alias), a local folder or a hub id, or several
joined with '+' (frozen only: backends.joined_encoders). A folder written by sentence-transformers
keeps its own pooling and normalisation; any other transformers checkpoint gets sentence-transformers'
default, mean pooling.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from promptlab.backends.aliases import ALIASES
from promptlab.backends.joined_encoders import (SEPARATOR, JoinedEncoders, join_rows, joined_fingerprint,
                                               joined_names)
from promptlab.backends.universal_encoder import ALIAS as UNIVERSAL_ENCODER
from promptlab.errors import UserError

ENCODE_BATCH = 64
ENCODER_FOLDER = "encoder"  # a fine-tuned encoder inside a trained artefact


@dataclass
class LoadedEncoder:
    name: str     # what the user asked for
    source: str   # the local folder or hub id the weights came from
    model: Any    # a sentence_transformers.SentenceTransformer, in eval mode
    fingerprint: str
    parts: tuple["LoadedEncoder", ...] = field(default=())  # the encoders a '+' name joins

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return encode(self.model, texts)

    def encode_frozen(self, texts: Sequence[str]) -> np.ndarray:
        """encode's rows through the embeddings cache: for an encoder whose weights nothing has changed."""
        from promptlab.backends.embedding_cache import cached_rows, encoder_key
        if self.parts:  # each encoder's own cache: the rows its runs alone left there serve the join too
            return join_rows([part.encode_frozen(texts) for part in self.parts])
        return cached_rows(encoder_key(self.fingerprint, self.model), texts, self.encode)

    def save(self, folder: Path) -> None:
        """A sentence-transformers folder (safetensors weights, pooling and normalisation modules)."""
        self.model.save_pretrained(str(folder), safe_serialization=True)

    def as_loaded_model(self):
        """The encoder in the shape of a LoadedModel, for code that reports the model it applied."""
        from promptlab.backends.models import LoadedModel
        return LoadedModel(name=self.name, source=self.source, kind="encoder", model=self.model,
                           tokenizer=self.model.tokenizer, device=self.model.device, fingerprint=self.fingerprint)


def encode(model: Any, texts: Sequence[str]) -> np.ndarray:
    """One float32 row per text, [N, dim], without gradients; the same batches in training and applying."""
    return model.encode(list(texts), batch_size=ENCODE_BATCH, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32)


def resolve_encoder(name: str) -> str:
    """The local folder or hub id behind an encoder name; reads nothing but the alias table and paths."""
    from promptlab.backends.models import alias_source
    if name in ALIASES:
        return alias_source(name)
    path = Path(name).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise UserError("no config.json in this encoder folder", where=path,
                        fix="pass a folder written by save_pretrained (sentence-transformers or transformers)")
    return str(path.resolve()) if path.exists() else name


def load_encoder(name: str, *, device: str, trainable: bool = False) -> LoadedEncoder:
    """`trainable`: the caller fine-tunes it (setfit), which numpy encoders cannot serve; it loads in float32.

    A frozen alias or hub encoder runs in bfloat16 where the hardware computes it natively (resolve_dtype's
    auto): the head's accuracy on Banking77 dev is the same (docs/results.md) at 1.3x the speed. A local
    folder keeps float32: it may be a setfit artefact's encoder, whose head was fitted on float32 features."""
    names = joined_names(name)
    if names:
        return _load_joined(name, names, device, trainable)
    if name == UNIVERSAL_ENCODER:
        return _load_universal(name, trainable)
    import torch
    from sentence_transformers import SentenceTransformer

    from promptlab.backends.models import resolve_device, resolve_dtype, weights_fingerprint
    source = resolve_encoder(name)
    local_only = Path(source).is_dir()
    torch_device = resolve_device(device)
    own_folder = local_only and name not in ALIASES  # an alias resolves to a folder too, of known weights
    dtype = torch.float32 if trainable or own_folder else resolve_dtype(None, torch_device)
    try:
        model = SentenceTransformer(source, device=str(torch_device), local_files_only=local_only,
                                    model_kwargs={"dtype": dtype})
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load the encoder '{name}': {str(error).strip().splitlines()[0]}",
                        where=source) from None
    tokenizer = model.tokenizer
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:  # causal LMs: pooling masks pads anyway
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedEncoder(name=name, source=source, model=model, fingerprint=weights_fingerprint(model))


def _load_universal(name: str, trainable: bool) -> LoadedEncoder:
    from promptlab.backends.universal_encoder import load_universal_encoder
    if trainable:
        raise UserError(f"encoder '{name}' runs in numpy with frozen weights: setfit cannot fine-tune it",
                        fix=f"use fewshot --method head --encoder {name}, or a sentence-transformers encoder for setfit")
    model = load_universal_encoder()
    return LoadedEncoder(name=name, source=str(model.weights), model=model, fingerprint=model.fingerprint())


def _load_joined(name: str, names: list[str], device: str, trainable: bool) -> LoadedEncoder:
    if trainable:
        raise UserError(f"encoder '{name}' joins {len(names)} frozen encoders: setfit fine-tunes one",
                        fix=f"use fewshot --method head --encoder {name}, or one encoder for setfit")
    parts = tuple(load_encoder(part, device=device) for part in names)
    return LoadedEncoder(name=name, source=SEPARATOR.join(part.source for part in parts),
                         model=JoinedEncoders([part.model for part in parts]),
                         fingerprint=joined_fingerprint([part.fingerprint for part in parts]), parts=parts)
