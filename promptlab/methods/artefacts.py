"""The trained artefact: one folder format for every few-shot method.

    DIR/trained.json         format, method, what it is tied to (task, template and verbalizer with content
                             hashes, model with weights fingerprint), the scoring it was trained with,
                             the method's JSON state, and provenance (seed, k, sampled ids, options, metrics)
    DIR/weights.safetensors  the method's small tensors, when it has any (a soft prompt, a head)
    DIR/model/               a whole model written by `save_pretrained` (safetensors), when the method
                             changed the weights (fine-tuning)
    DIR/...                  files a method writes in its own standard format (lora: the PEFT adapter
                             files, so `PeftModel.from_pretrained(base, DIR)` loads the folder as it is)

A method hands `Trained` to `save_trained`, which writes the folder whole or not at all: into a staging
folder beside it, renamed into place at the end, and never into a folder that already holds files
(`claim_seed_folders` clears them first for `fewshot --overwrite`). `load_trained` reads a folder back
onto the CPU, taking only the files trained.json declares; `check_compatible` refuses it for another
task, template, verbalizer or model, and `check_model_copy` refuses a model copy whose weights are not
the ones saved. Nothing is pickled.
How each method turns a loaded folder back into a classifier lives in `promptlab.apply.registry`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from promptlab.backends.models import weights_fingerprint
from promptlab.errors import UserError
from promptlab.runtime.outputs import write_atomic, write_json

FORMAT = "promptlab-trained/1"
METADATA_FILE = "trained.json"
WEIGHTS_FILE = "weights.safetensors"
MODEL_FOLDER = "model"
# Soft prompts saved before this format: soft_prompt.json + soft_prompt.safetensors (prompt_embeddings).
LEGACY_PROMPT_FILES = ("soft_prompt.json", "soft_prompt.safetensors")
_FIX = "pass a folder written by `promptlab fewshot --output DIR` (DIR/seed-N)"


@dataclass
class Trained:
    """What a method leaves behind to be applied again."""

    method: str
    state: dict = field(default_factory=dict)  # JSON-ready, the method's own keys
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # saved to weights.safetensors
    model: Any = None  # a transformers model (with `tokenizer`) saved to model/ with save_pretrained
    tokenizer: Any = None
    scoring: dict = field(default_factory=dict)  # calibrate/aggregate it was trained and tested with
    write_files: Callable[[Path], None] | None = None  # writes the method's own files into the folder


@dataclass(frozen=True)
class SavedTrained:
    folder: Path
    metadata: dict
    tensors: dict[str, torch.Tensor]  # on the CPU

    @property
    def method(self) -> str:
        return self.metadata["method"]

    @property
    def state(self) -> dict:
        return self.metadata.get("state", {})

    @property
    def scoring(self) -> dict:
        return self.metadata.get("scoring", {})

    @property
    def model_folder(self) -> Path | None:
        """The fine-tuned copy, when trained.json declares one (a stray model/ folder is never used)."""
        return self.folder / MODEL_FOLDER if self.metadata.get("has_model") else None


def trained_identity(setup, loaded) -> dict:
    """What an artefact is tied to: the model's weights, the task, the template and the verbalizer."""
    return {"model": loaded.name, "model_source": loaded.source, "model_kind": loaded.kind,
            "model_fingerprint": loaded.fingerprint, **setup.describe()}


def save_trained(folder: str | Path, trained: Trained, metadata: dict) -> Path:
    """Write the artefact into a staging folder and rename it into place: a crash leaves no half folder.

    An existing `folder` must be empty (a file left there would load with the new trained.json).
    """
    folder = Path(folder)
    refuse_filled(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".partial"))
    try:
        os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the artefact from other users
        _write_files(staging, trained, metadata)
        os.replace(staging, folder)  # a rename: replaces an empty folder, fails on a filled one
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _write_files(folder: Path, trained: Trained, metadata: dict) -> None:
    copy = {}
    if trained.model is not None:
        _save_model(folder / MODEL_FOLDER, trained.model, trained.tokenizer)
        copy = {"model_copy_fingerprint": weights_fingerprint(trained.model)}
    if trained.write_files is not None:
        trained.write_files(folder)
    if trained.tensors:
        tensors = {name: _stored(tensor) for name, tensor in trained.tensors.items()}
        write_atomic(folder / WEIGHTS_FILE, _safetensors_bytes(tensors))
    shapes = {name: list(tensor.shape) for name, tensor in trained.tensors.items()}
    write_json(folder / METADATA_FILE, {"format": FORMAT, "method": trained.method, **metadata,
                                        "scoring": trained.scoring, "state": trained.state, "tensors": shapes,
                                        "has_model": trained.model is not None, **copy})


def refuse_filled(folder: Path) -> None:
    if folder.is_dir() and any(folder.iterdir()):
        held = _read_json(folder / METADATA_FILE).get("method") if (folder / METADATA_FILE).is_file() else None
        raise UserError(f"the folder already holds {f'a {held} artefact' if held else 'files'}; promptlab writes a "
                        "trained artefact only into a new or empty folder", where=folder,
                        fix="pass --overwrite to clear it first, or name another --output")
    if folder.exists() and not folder.is_dir():
        raise UserError("a file stands where the artefact folder goes", where=folder, fix="name another --output")


def claim_seed_folders(output: Path, seeds, *, overwrite: bool) -> list[Path]:
    """The `seed-N` folders a run will write under `output`: refused when filled, or cleared with `overwrite`.

    Checked before any training, so a run does not train for an hour and then find it cannot save.
    """
    folders = [Path(output) / f"seed-{seed}" for seed in seeds]
    for folder in folders:
        if overwrite and folder.is_dir():
            shutil.rmtree(folder)
        elif overwrite and folder.exists():
            folder.unlink()
        refuse_filled(folder)
    return folders


def _stored(tensor: torch.Tensor) -> torch.Tensor:
    """float64 stays (a head's coefficients reproduce scikit-learn exactly); other floats become float32."""
    tensor = tensor.detach().cpu().contiguous()
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def _safetensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return save(tensors, metadata={"format": FORMAT})


def _save_model(target: Path, model, tokenizer) -> None:
    model.save_pretrained(target)  # safetensors by default in transformers 5
    if tokenizer is not None:
        tokenizer.save_pretrained(target)


def load_trained(path: str | Path) -> SavedTrained:
    """Read an artefact folder (or its trained.json); legacy soft-prompt folders load as method softprompt."""
    folder = Path(path)
    if folder.is_file() and folder.name in (METADATA_FILE, *LEGACY_PROMPT_FILES):
        folder = folder.parent
    if not folder.is_dir():
        raise UserError("trained artefact folder does not exist", where=folder, fix=_FIX)
    if not (folder / METADATA_FILE).is_file():
        if (folder / LEGACY_PROMPT_FILES[0]).is_file():
            return _load_legacy_prompt(folder)
        raise UserError(f"no {METADATA_FILE} in this folder", where=folder, fix=_FIX)
    metadata = _read_json(folder / METADATA_FILE)
    if metadata.get("format") != FORMAT:
        raise UserError(f"not a promptlab trained artefact (format should be '{FORMAT}')",
                        where=folder / METADATA_FILE, fix="use an artefact saved by this version of promptlab")
    tensors = _read_tensors(folder / WEIGHTS_FILE) if metadata.get("tensors") else {}
    for name, shape in metadata.get("tensors", {}).items():
        if name not in tensors or list(tensors[name].shape) != shape:
            raise UserError(f"the weights file holds no {shape} tensor '{name}'", where=folder / WEIGHTS_FILE, fix=_FIX)
    if metadata.get("has_model") and not (folder / MODEL_FOLDER / "config.json").is_file():
        raise UserError(f"the fine-tuned model is missing ({MODEL_FOLDER}/config.json)", where=folder, fix=_FIX)
    if metadata.get("has_model") and not metadata.get("model_copy_fingerprint"):
        raise UserError("trained.json names no fingerprint for its fine-tuned model copy, so the copy cannot be "
                        "checked", where=folder / METADATA_FILE, fix="train it again with this promptlab")
    return SavedTrained(folder, metadata, tensors)


def check_model_copy(saved: SavedTrained, fingerprint: str) -> None:
    """The model/ copy loaded must be the one saved with this trained.json (not another run's)."""
    expected = saved.metadata["model_copy_fingerprint"]
    if fingerprint != expected:
        raise UserError(f"the fine-tuned model in {MODEL_FOLDER}/ has weights fingerprint {fingerprint}, trained.json "
                        f"saved {expected}: the folder holds another run's model", where=saved.folder,
                        fix="train again into a new folder (fewshot --output NEW, or --overwrite)")


def _load_legacy_prompt(folder: Path) -> SavedTrained:
    metadata = _read_json(folder / LEGACY_PROMPT_FILES[0])
    tensors = _read_tensors(folder / LEGACY_PROMPT_FILES[1])
    if "prompt_embeddings" not in tensors:
        raise UserError("the file holds no tensor 'prompt_embeddings'", where=folder / LEGACY_PROMPT_FILES[1], fix=_FIX)
    return SavedTrained(folder, {**metadata, "method": "softprompt"}, tensors)


def _read_json(path: Path) -> dict:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read the artefact metadata: {error}", where=path, fix=_FIX) from None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("method", ""), str):
        raise UserError("the artefact metadata is not a JSON object naming its method", where=path, fix=_FIX)
    return metadata


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as error:
        raise UserError(f"cannot read the artefact weights: {error}", where=path, fix=_FIX) from None


# ---------------------------------------------------------------- compatibility

def check_compatible(saved: SavedTrained, *, setup, fingerprint: str | None = None, model_name: str | None = None
                     ) -> None:
    """Refuse an artefact trained for another task, template, verbalizer or (when given) model weights."""
    meta = saved.metadata
    problems: list[str] = []
    fixes: list[str] = []
    if meta.get("task") != setup.task.name:
        problems.append(f"it was trained for task '{meta.get('task')}', this run is task '{setup.task.name}'")
        fixes.append(f"pass --task {meta.get('task')}")
    for kind, item in (("template", setup.template), ("verbalizer", setup.verbalizer)):
        _compare_file(kind, meta.get(kind), meta.get(f"{kind}_hash"), item, problems, fixes)
    if fingerprint is not None and meta.get("model_fingerprint") != fingerprint:
        problems.append(f"it was trained for model '{meta.get('model')}' (weights fingerprint "
                        f"{meta.get('model_fingerprint')}), this run uses '{model_name}' (fingerprint {fingerprint})")
        fixes.append(f"leave out --model (the artefact names its own), or train for this model with "
                     f"`promptlab fewshot --model {model_name}`")
    if problems:
        raise UserError("this trained artefact does not fit the run: " + "; ".join(problems), where=saved.folder,
                        fix="; ".join(fixes))


def _compare_file(kind: str, name: str | None, content_hash: str | None, item, problems: list[str],
                  fixes: list[str]) -> None:
    if name != item.name:
        problems.append(f"it was trained with {kind} '{name}', this run uses '{item.name}'")
        fixes.append(f"pass --{kind} {name}, or leave --{kind} out")
    elif content_hash != item.content_hash:
        problems.append(f"{kind} '{name}' changed since it was trained (hash {content_hash}, now {item.content_hash})")
        fixes.append(f"restore {item.path} as it was, or train again")


# ---------------------------------------------------------------- showing

def describe_lines(saved: SavedTrained) -> list[str]:
    """What `promptlab trained show` prints: the method, what it is tied to, its files and results."""
    meta = saved.metadata
    test = meta.get("test") or {}
    lines = [f"{saved.folder}",
             f"  method      {saved.method}" + "".join(f", {key} {meta[key]}" for key in ("seed", "k") if key in meta),
             f"  task        {meta.get('task')}"]
    lines += [f"  {kind:<10}  {meta[kind]} (hash {meta.get(kind + '_hash')})"  # token classifiers have neither
              for kind in ("template", "verbalizer") if meta.get(kind)]
    fingerprint = meta.get("model_fingerprint") and f"fingerprint {meta['model_fingerprint']}"
    about = ", ".join(part for part in (meta.get("model_kind"), fingerprint) if part)
    lines += [f"  model       {meta.get('model')}" + (f" ({about})" if about else ""),
              "  scoring     " + (", ".join(f"{key} {value}" for key, value in saved.scoring.items()) or "-")]
    if saved.tensors:
        lines.append("  weights     " + ", ".join(f"{name} {list(tensor.shape)}"
                                                   for name, tensor in saved.tensors.items()))
    if saved.model_folder:
        lines.append(f"  model copy  {saved.model_folder} (fine-tuned weights)")
    state = {key: value for key, value in saved.state.items() if key != "demonstrations"}
    if "demonstrations" in saved.state:
        state["demonstrations"] = f"{len(saved.state['demonstrations'])} examples"
    if state:
        lines.append("  state       " + json.dumps(state, ensure_ascii=False))
    if meta.get("training"):
        lines.append("  training    " + json.dumps(meta["training"], ensure_ascii=False))
    if "sample_checksum" in meta:
        lines.append(f"  sample      checksum {meta['sample_checksum']}")
    if meta.get("dev_accuracy") is not None:
        lines.append(f"  dev         accuracy {meta['dev_accuracy']:.4f}")
    if test:  # text tasks: accuracy, macro_f1, n; entity tasks: f1
        lines.append("  test        " + "  ".join(f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}"
                                                  for name, value in test.items()))
    return lines
