"""Soft prompts (prompt tuning): n trainable vectors spliced into a frozen model's input embeddings.

    SoftPrompt()  -> [n, hidden]   the vectors the backend writes after the leading special tokens

Initialisation copies rows of the model's embedding table, so training starts from real words at the
right scale: tokens sampled from the frequent part of the vocabulary (`vocab`, Lester et al.), the
tokens of a text (`text`), or the tokens of the label words (`labels`). With `reparameterize="mlp"`
(P-tuning) the vectors pass through a residual two-layer MLP whose last layer starts at zero, so the
prompt starts exactly at its initialisation either way.

A trained prompt is a folder with `soft_prompt.safetensors` (one tensor, `prompt_embeddings`: the
vectors after the encoder) and `soft_prompt.json` (model fingerprint, template and verbalizer
hashes, training config, metrics). It loads onto the CPU whatever device it was trained on, and
`check_compatible` refuses it for another model, task, template or verbalizer.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from promptlab.errors import UserError
from promptlab.outputs import write_json

INITS = ("vocab", "text", "labels")
REPARAMETERIZATIONS = ("none", "mlp")
TENSOR_FILE = "soft_prompt.safetensors"
METADATA_FILE = "soft_prompt.json"
TENSOR_NAME = "prompt_embeddings"  # PEFT's name for the same tensor
FORMAT = "promptlab-soft-prompt/1"
_FREQUENT_VOCABULARY = 5000  # BPE ids are roughly in merge (frequency) order; rare pieces make poor starts


class SoftPrompt(torch.nn.Module):
    """Trainable prompt vectors, optionally reparameterised by an MLP (P-tuning)."""

    def __init__(self, initial: torch.Tensor, *, reparameterize: str = "none"):
        super().__init__()
        if reparameterize not in REPARAMETERIZATIONS:
            raise ValueError(f"reparameterize must be one of {REPARAMETERIZATIONS}, got {reparameterize!r}")
        self.embeddings = torch.nn.Parameter(initial.detach().clone().float())  # [n, hidden]
        self.encoder = _residual_mlp(initial.shape[1]) if reparameterize == "mlp" else None

    def forward(self) -> torch.Tensor:
        if self.encoder is None:
            return self.embeddings
        return self.embeddings + self.encoder(self.embeddings)


def _residual_mlp(hidden: int) -> torch.nn.Sequential:
    mlp = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden))
    torch.nn.init.zeros_(mlp[2].weight)
    torch.nn.init.zeros_(mlp[2].bias)
    return mlp


# ---------------------------------------------------------------- initialisation

def initial_embeddings(model: torch.nn.Module, tokenizer, *, length: int, init: str, seed: int,
                       text: str = "", label_words: list[str] = ()) -> torch.Tensor:
    """[length, hidden] rows of the model's input embedding table, chosen by `init`."""
    if length < 1:
        raise UserError(f"the prompt length must be at least 1, got {length}", fix="pass --prompt-length 8, say")
    table = model.get_input_embeddings().weight.detach()
    ids = _init_token_ids(tokenizer, init=init, length=length, seed=seed, text=text, label_words=label_words,
                          vocabulary=table.shape[0])
    return table[torch.tensor(ids, device=table.device)].float().cpu().clone()


def _init_token_ids(tokenizer, *, init: str, length: int, seed: int, text: str, label_words,
                    vocabulary: int) -> list[int]:
    if init == "vocab":
        special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
        candidates = [i for i in range(min(vocabulary, _FREQUENT_VOCABULARY)) if i not in special]
        generator = torch.Generator().manual_seed(seed)
        return [candidates[i] for i in torch.randint(len(candidates), (length,), generator=generator).tolist()]
    if init == "text":
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text.strip() else []
        if not ids:
            raise UserError("prompt init 'text' needs a text to start from", fix="set the option init_text, e.g. "
                            "'Classify the sentiment of this review.'")
        return _cycle(ids, length)
    if init == "labels":
        per_word = [tokenizer(" " + word.strip(), add_special_tokens=False)["input_ids"] for word in label_words]
        return _cycle([token for ids in per_word for token in ids], length)
    raise UserError(f"unknown prompt init '{init}'", fix="choose one of: " + ", ".join(INITS))


def _cycle(ids: list[int], length: int) -> list[int]:
    """Repeat (or cut) ids to exactly `length`, as PEFT does for text initialisation."""
    return [ids[i % len(ids)] for i in range(length)]


# ---------------------------------------------------------------- saving and loading

@dataclass(frozen=True)
class SavedPrompt:
    embeddings: torch.Tensor  # [n, hidden], float32, on the CPU
    metadata: dict
    folder: Path


def save_soft_prompt(folder: Path, embeddings: torch.Tensor, metadata: dict) -> Path:
    """Write the tensor, then the JSON: a folder with its JSON is always complete."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensor = embeddings.detach().float().cpu().contiguous()
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{TENSOR_FILE}.", suffix=".tmp")
    os.close(handle)
    try:
        save_file({TENSOR_NAME: tensor}, temporary, metadata={"format": FORMAT})
        os.replace(temporary, folder / TENSOR_FILE)
    finally:
        Path(temporary).unlink(missing_ok=True)
    write_json(folder / METADATA_FILE, {"format": FORMAT, **metadata, "n_tokens": tensor.shape[0],
                                        "hidden_size": tensor.shape[1]})
    return folder


def load_soft_prompt(path: str | Path) -> SavedPrompt:
    """Load a saved prompt folder (or either file in it) onto the CPU."""
    folder = Path(path)
    if folder.is_file() and folder.name in (TENSOR_FILE, METADATA_FILE):
        folder = folder.parent
    fix = "pass a folder written by `promptlab fewshot --method softprompt --output DIR` (DIR/seed-N)"
    if not folder.is_dir():
        raise UserError("soft prompt folder does not exist", where=folder, fix=fix)
    for name in (TENSOR_FILE, METADATA_FILE):
        if not (folder / name).is_file():
            raise UserError(f"no {name} in this soft prompt folder", where=folder, fix=fix)
    metadata = _read_metadata(folder / METADATA_FILE)
    try:
        tensors = load_file(folder / TENSOR_FILE, device="cpu")
    except (SafetensorError, OSError) as error:
        raise UserError(f"cannot read the soft prompt tensor: {error}", where=folder / TENSOR_FILE, fix=fix) from None
    embeddings = tensors.get(TENSOR_NAME)
    if embeddings is None or embeddings.ndim != 2 or embeddings.shape[0] != metadata.get("n_tokens"):
        raise UserError(f"the file holds no [{metadata.get('n_tokens')}, hidden] tensor '{TENSOR_NAME}'",
                        where=folder / TENSOR_FILE, fix=fix)
    return SavedPrompt(embeddings.float(), metadata, folder)


def _read_metadata(path: Path) -> dict:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read the soft prompt metadata: {error}", where=path) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise UserError(f"not a promptlab soft prompt (format should be '{FORMAT}')", where=path,
                        fix="use a prompt saved by this version of promptlab")
    return metadata


# ---------------------------------------------------------------- compatibility

def prompt_identity(setup, loaded) -> dict:
    """What a soft prompt is tied to: the model's weights, the task, the template and the verbalizer."""
    return {"model": loaded.name, "model_source": loaded.source, "model_kind": loaded.kind,
            "model_fingerprint": loaded.fingerprint, **setup.describe()}


def check_compatible(saved: SavedPrompt, *, setup, loaded=None) -> None:
    """Refuse a prompt trained for another task, template, verbalizer or (when given) model."""
    meta = saved.metadata
    problems: list[str] = []
    fixes: list[str] = []
    if meta.get("task") != setup.task.name:
        problems.append(f"it was trained for task '{meta.get('task')}', this run is task '{setup.task.name}'")
        fixes.append(f"pass --task {meta.get('task')}")
    for kind, item in (("template", setup.template), ("verbalizer", setup.verbalizer)):
        _compare_file(kind, meta.get(kind), meta.get(f"{kind}_hash"), item, problems, fixes)
    if loaded is not None and meta.get("model_fingerprint") != loaded.fingerprint:
        problems.append(f"it was trained for model '{meta.get('model')}' (weights fingerprint "
                        f"{meta.get('model_fingerprint')}), this run uses '{loaded.name}' "
                        f"(fingerprint {loaded.fingerprint})")
        fixes.append(f"pass --model {meta.get('model')}, or train a prompt for this model with "
                     f"`promptlab fewshot --model {loaded.name}`")
    if problems:
        raise UserError("this soft prompt does not fit the run: " + "; ".join(problems), where=saved.folder,
                        fix="; ".join(fixes))


def _compare_file(kind: str, name: str | None, content_hash: str | None, item, problems: list[str],
                  fixes: list[str]) -> None:
    if name != item.name:
        problems.append(f"it was trained with {kind} '{name}', this run uses '{item.name}'")
        fixes.append(f"pass --{kind} {name}")
    elif content_hash != item.content_hash:
        problems.append(f"{kind} '{name}' changed since the prompt was trained "
                        f"(hash {content_hash}, now {item.content_hash})")
        fixes.append(f"restore {item.path} as it was, or train the prompt again")
