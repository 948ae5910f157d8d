"""The language models promptlab scores with: aliases, kind detection, loading, fingerprints.

`--model` takes an alias (see ALIASES), a local folder written by `save_pretrained`, or a hub id.
Aliases prefer weights shipped inside a pip package, so they work offline; the hub is their fallback.
transformers is imported inside functions so that `promptlab --help` stays fast.
"""
from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import sys
import tempfile
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from promptlab.backends.aliases import (
    ALIASES,
    Kind,
    ModelAlias,
    assemble_parts,
    converted_dir,
    is_converted,
    packaged_weights,
)
from promptlab.runtime.distributed import process_device
from promptlab.errors import UserError, did_you_mean

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")  # keys of torch.cpu.get_capabilities()
_DEVICE_AVAILABLE = {"cpu": lambda: True, "cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_FINGERPRINT_SAMPLE = 4096  # elements hashed per tensor: enough to tell checkpoints apart, fast at 135M


@dataclass
class LoadedModel:
    name: str                # what the user asked for
    source: str              # the local folder or hub id the weights came from
    kind: Kind
    model: Any               # a transformers PreTrainedModel, in eval mode, on `device`
    tokenizer: Any
    device: torch.device
    fingerprint: str

    @property
    def dtype(self) -> str:
        """The weights' precision as --dtype names it: float32, bfloat16 or float16."""
        return dtype_name(self.model.dtype)

    def provenance(self) -> dict:
        """Which weights, where and in what precision: what a results row records of its model."""
        return {"model_source": self.source, "model_kind": self.kind, "model_fingerprint": self.fingerprint,
                "device": str(self.device), "dtype": self.dtype}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------- devices and dtypes

def resolve_device(device: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU; an unavailable device is a UserError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device '{device}'", fix="use auto, cpu, cuda or cuda:N") from None
    available = _DEVICE_AVAILABLE.get(chosen.type)
    if available is None or not available():
        raise UserError(f"device '{device}' is not available on this machine", fix="use --device auto or cpu")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise UserError(f"device '{device}' does not exist: {torch.cuda.device_count()} GPU(s) visible",
                        fix="use --device cuda (the first GPU) or auto")
    return chosen


def resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """The weights' precision; None and 'auto' pick bfloat16 where the hardware runs it natively.

    'auto' is bfloat16 on a GPU that supports it and on a CPU with native bfloat16 instructions
    (cpu_has_native_bfloat16), float32 elsewhere: never float16 unasked, whose narrow range
    overflows in some models. bfloat16 is allowed on any CPU (emulated where not native: slower);
    float16 needs a GPU, as CPU kernels for it are slow and its range overflows.
    """
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if bfloat16_is_native(device) else torch.float32
    if dtype not in _DTYPES:
        raise UserError(f"unknown dtype '{dtype}'", fix=did_you_mean(dtype, _DTYPES))
    chosen = _DTYPES[dtype]
    if chosen == torch.float16 and device.type == "cpu":
        raise UserError("dtype float16 needs a GPU; this run is on the CPU",
                        fix="use --dtype bfloat16, or auto (bfloat16 where the CPU runs it natively)")
    return chosen


def bfloat16_is_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_native_bfloat16()


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 in hardware, as torch's cpuinfo reports it.

    x86: AVX512-BF16 or AMX-BF16; ARM: the BF16 extension (or SVE BF16). oneDNN's own check
    (torch.ops.mkldnn._is_mkldnn_bf16_supported) also answers yes on plain AVX-512, where it
    emulates bfloat16 at about float32's speed, so it cannot decide this.
    """
    capabilities = torch.cpu.get_capabilities()
    return any(capabilities.get(flag, False) for flag in _NATIVE_BFLOAT16_FLAGS)


# ---------------------------------------------------------------- kind detection

def detect_kind(config: Any) -> Kind:
    """'mlm' or 'causal' from a transformers config; anything else is a UserError.

    With `architectures` the saved head decides (a BertModel has no LM head, so it is refused even
    though bert has one); without it, the model type's auto mappings do.
    """
    masked, causal = _lm_mappings()
    model_type = getattr(config, "model_type", "")
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        kind = _kind_from_architectures(architectures, model_type, masked, causal)
    else:
        kind = _kind_from_model_type(config, masked, causal)
    if kind is None:
        name = getattr(config, "name_or_path", "")
        subject = f"model '{name}'" if name else "this model"
        what = f"{architectures[0]} ({model_type})" if architectures else f"'{model_type or 'unknown'}' model"
        raise UserError(f"{subject} is a {what}; promptlab needs a masked or causal LM",
                        fix="pick a checkpoint with a fill-mask (...ForMaskedLM) "
                            "or text-generation (...ForCausalLM) head")
    return kind


def _lm_mappings() -> tuple[dict[str, str], dict[str, str]]:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )
    return MODEL_FOR_MASKED_LM_MAPPING_NAMES, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def _kind_from_architectures(architectures: list[str], model_type: str,
                             masked: dict[str, str], causal: dict[str, str]) -> Kind | None:
    # The model type must be in the mapping too, or the Auto class could not load it
    # (old T5 checkpoints say 'T5WithLMHeadModel' but are seq2seq).
    for architecture in architectures:
        if model_type in masked and (architecture.endswith("ForMaskedLM") or architecture == masked[model_type]):
            return "mlm"
        if model_type in causal and (architecture.endswith(_CAUSAL_SUFFIXES) or architecture == causal[model_type]):
            return "causal"
    return None


def _kind_from_model_type(config: Any, masked: dict[str, str], causal: dict[str, str]) -> Kind | None:
    model_type = getattr(config, "model_type", "")
    if model_type in masked and model_type in causal:  # encoders with an optional decoder head, like bert
        return "causal" if getattr(config, "is_decoder", False) else "mlm"
    if model_type in masked:
        return "mlm"
    if model_type in causal:
        return "causal"
    return None


# ---------------------------------------------------------------- resolving names

def resolve_model(name: str) -> tuple[str, Kind]:
    """(local folder or hub id, kind) for an alias, folder or hub id, reading configs only.

    For the smollm2 alias this may run the one-time GGUF conversion.
    """
    if name in ALIASES:
        alias = ALIASES[name]
        if alias.kind == "encoder":
            raise UserError(f"model '{name}' is a sentence encoder: it has no LM head to score label words",
                            fix=f"use it as the features of a few-shot method: fewshot --method head --encoder {name}"
                                f" (or --method setfit --encoder {name})")
        return _resolve_alias(alias)
    folder = _local_folder(name)
    if folder is not None:
        return str(folder), detect_kind(_read_config(str(folder), local_only=True))
    _refuse_alias_typo(name)
    return name, detect_kind(_hub_config(name))


def model_source(name: str) -> str:
    """The local folder or hub id of an alias, folder or hub id, whatever head its model has
    (token-classification heads are put on encoders and LMs alike)."""
    if name in ALIASES:
        return alias_source(name)
    folder = _local_folder(name)
    if folder is not None:
        return str(folder)
    _refuse_alias_typo(name)
    return name


def _local_folder(name: str) -> Path | None:
    """The model folder `name` points at, None when it is no path at all (then it is a hub id)."""
    path = Path(name).expanduser()
    if not path.exists():
        # Hub ids are 'org/name'; anything more path-like is a folder that is missing.
        if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
            raise UserError(f"model folder '{name}' does not exist", fix="check the path")
        return None
    if not path.is_dir():
        raise UserError("a model must be a folder, not a file", where=path,
                        fix="pass the folder `save_pretrained` wrote (with config.json)")
    if not (path / "config.json").is_file():
        raise UserError("no config.json in this model folder", where=path,
                        fix="pass the folder `save_pretrained` wrote (with config.json)")
    return path.resolve()


def _refuse_alias_typo(name: str) -> None:
    # A near miss of an alias is a typo, not a hub id: answer at once instead of after the
    # hub's retries (about 30 s when offline).
    if "/" not in name and difflib.get_close_matches(name, ALIASES, n=1, cutoff=0.8):
        raise UserError(f"unknown model '{name}': not an alias ({', '.join(ALIASES)}) "
                        "and not a local folder", fix=did_you_mean(name, ALIASES))


def _read_config(source: str, *, local_only: bool) -> Any:
    from transformers import AutoConfig
    try:
        return AutoConfig.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the model config: {_first_line(error)}", where=source) from None


@functools.lru_cache(maxsize=1)  # once per process
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers a TCP connection at once: offline, its client retries for about 30 s.

    Behind a proxy (HTTPS_PROXY) or with HF_HUB_OFFLINE set, the client's own rules apply.
    """
    from huggingface_hub import constants
    if constants.HF_HUB_OFFLINE or any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy")):
        return True
    endpoint = urllib.parse.urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_config(name: str) -> Any:
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoConfig
    try:
        # Unreachable: answer from the local cache or fail at once, instead of after the client's retries.
        return AutoConfig.from_pretrained(name, local_files_only=not hub_reachable())
    except (OSError, HFValidationError) as error:
        raise UserError(f"unknown model '{name}': not an alias ({', '.join(ALIASES)}), not a local folder, "
                        f"and not reachable on the hub ({_first_line(error)})",
                        fix=_unknown_model_fix(name)) from None
    except ValueError as error:  # reachable, but of a type this transformers cannot read
        raise UserError(f"model '{name}': cannot read its config: {_first_line(error)}") from None


def _unknown_model_fix(name: str) -> str:
    hint = did_you_mean(name, ALIASES)
    if hint.startswith("did you mean"):
        return hint
    return "check the name and the network, or pass a folder written by save_pretrained"


def _first_line(error: Exception) -> str:
    line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return line if len(line) <= 200 else line[:197] + "..."


# ---------------------------------------------------------------- aliases

def alias_source(name: str) -> str:
    """The local folder (or, without its package, the hub twin) of an alias of any kind."""
    return _resolve_alias(ALIASES[name])[0]


def _resolve_alias(alias: ModelAlias) -> tuple[str, Kind]:
    packaged = packaged_weights(alias)
    if packaged is None:
        return _alias_hub_twin(alias), alias.kind
    if packaged.suffix == ".gguf":
        return str(_converted_once(alias, packaged)), alias.kind
    if packaged.suffix == ".zip":
        return str(_unpacked_once(alias)), alias.kind
    return str(packaged), alias.kind


def _alias_hub_twin(alias: ModelAlias) -> str:
    missing = f"model '{alias.name}' needs the {alias.offline_package.split('==')[0]} package, which is not installed"
    if alias.hub_id is None:
        raise UserError(missing, fix=alias.install_hint)
    try:
        _hub_config(alias.hub_id)
    except UserError:
        raise UserError(f"{missing}, and its hub twin {alias.hub_id} is not reachable",
                        fix=alias.install_hint) from None
    return alias.hub_id


def _converted_once(alias: ModelAlias, gguf: Path) -> Path:
    target = converted_dir(alias)
    if not is_converted(target):
        _convert_gguf(alias, gguf, target)
    return target


def _convert_gguf(alias: ModelAlias, gguf: Path, target: Path) -> None:
    """Dequantize the packaged GGUF into an fp32 safetensors folder: later loads take 0.2 s, not 20 s."""
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"model '{alias.name}' is shipped as GGUF, which needs the gguf package",
                        fix="pip install gguf accelerate")
    print(f"promptlab: converting {alias.name} from {alias.offline_package.split('==')[0]} once into "
          f"{target} (about 30-60 s)", file=sys.stderr, flush=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is not
    try:
        if alias.parts:  # shipped in pieces: assembled (and checked) first, and not kept once converted
            gguf = assemble_parts(alias, Path(tempfile.mkdtemp(prefix="gguf-", dir=staging)))
        _write_fp32_copy(gguf, staging)
        if alias.parts:
            shutil.rmtree(gguf.parent)
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpacked_once(alias: ModelAlias) -> Path:
    """The model folder zipped in the alias's parts: assembled, checked and unzipped once into the cache."""
    target = converted_dir(alias)
    if is_converted(target):
        return target
    print(f"promptlab: unpacking {alias.name} from its {len(alias.parts)} part packages once into {target} "
          "(about 10 s)", file=sys.stderr, flush=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is not
    try:
        archive = assemble_parts(alias, Path(tempfile.mkdtemp(prefix="zip-", dir=staging)))
        _unzip_model_folder(archive, staging)
        shutil.rmtree(archive.parent)
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _unzip_model_folder(archive: Path, folder: Path) -> None:
    """The archive's model folder (its one top-level folder, or its root) into `folder`, without desktop.ini."""
    with zipfile.ZipFile(archive) as opened:
        names = [name for name in opened.namelist() if Path(name).name.lower() != "desktop.ini"]
        tops = {name.split("/", 1)[0] for name in names}
        root = f"{tops.pop()}/" if len(tops) == 1 and all("/" in name for name in names) else ""
        for name in names:
            relative = name[len(root):]
            if not relative or name.endswith("/"):
                continue
            destination = folder / relative
            if not destination.resolve().is_relative_to(folder.resolve()):
                raise UserError(f"the archive of this model writes outside its folder: {name}", where=archive)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with opened.open(name) as source, destination.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)


def _write_fp32_copy(gguf: Path, folder: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    source = {"pretrained_model_name_or_path": str(gguf.parent), "gguf_file": gguf.name, "local_files_only": True}
    config = AutoConfig.from_pretrained(**source)
    tokenizer = AutoTokenizer.from_pretrained(**source)
    dequantized = AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32)
    if hasattr(config, "quantization_config"):  # else the copy would claim to still be GGUF-quantized
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(dequantized.state_dict())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _publish(staging: Path, target: Path) -> None:
    """Move a finished copy into place in one rename, so no reader ever sees half a folder."""
    if target.exists() and not is_converted(target):
        shutil.rmtree(target)  # leftover empty or foreign folder in our cache
    try:
        os.rename(staging, target)
    except OSError:
        if not is_converted(target):  # else another process finished first: keep its copy
            raise


# ---------------------------------------------------------------- loading

def load_model(name: str, *, device: str = "auto", dtype: str | None = None) -> LoadedModel:
    """Load an alias, folder or hub id, ready to score: eval mode, on the device, tokenizer set up.

    `dtype` is a --dtype value; None is 'auto' (resolve_dtype).
    """
    torch_device = resolve_device(process_device(device))  # under a launcher: this process's own GPU
    torch_dtype = resolve_dtype(dtype, torch_device)
    source, kind = resolve_model(name)
    local_only = Path(source).is_dir() or not hub_reachable()  # local folders must never touch the network
    # On the CPU a half-precision body scores through a float32 head (read from float32 weights);
    # a GPU loads the chosen dtype directly, its memory being the tighter limit.
    split_head = torch_dtype != torch.float32 and torch_device.type == "cpu"
    # The weights are read (memory-mapped) straight into the dtype they run in; only the head's
    # float32 weights are read apart, from the checkpoint, when a half-precision body needs them.
    model = _load_weights(source, kind, torch_dtype, local_only)
    exact_head = _float32_copy_of_head(model, source, kind, local_only) if split_head else None
    model = model.to(torch_device).eval()
    fingerprint = weights_fingerprint(model)  # before the head is split off: the same in every dtype
    if exact_head is not None:
        model.set_output_embeddings(exact_head.to(torch_device))
    tokenizer = _load_tokenizer(source, kind, local_only)
    return LoadedModel(name=name, source=source, kind=kind, model=model, tokenizer=tokenizer,
                       device=torch_device, fingerprint=fingerprint)


def _float32_copy_of_head(model: torch.nn.Module, source: str, kind: Kind, local_only: bool) -> torch.nn.Module | None:
    """The projection onto the vocabulary as a float32 layer of its own, for a half-precision body.

    Logits rounded to bfloat16 move by up to 0.06 at a logit of 20, enough to flip near ties between
    label words; in float32 the projection costs little, as it runs only at the scored positions.
    A head tied to the input embeddings gets its own copy; its input is cast to float32. Its weights
    come from the checkpoint, not the rounded body: one tensor read from a local safetensors file,
    or else the whole checkpoint loaded again in float32.
    """
    head = model.get_output_embeddings()
    if not isinstance(head, torch.nn.Linear):
        return None
    exact = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None, dtype=torch.float32)
    saved = {key: _checkpoint_tensor(source, _names_of(model, parameter)) for key, parameter in head.named_parameters()}
    if any(tensor is None for tensor in saved.values()):
        saved = dict(_load_weights(source, kind, torch.float32, local_only).get_output_embeddings().named_parameters())
    with torch.no_grad():
        for key, parameter in exact.named_parameters():
            parameter.copy_(saved[key])
    exact.requires_grad_(False)
    exact.register_forward_pre_hook(lambda _module, inputs: tuple(tensor.float() for tensor in inputs))
    return exact


def _names_of(model: torch.nn.Module, parameter: torch.nn.Parameter) -> list[str]:
    """Every name the parameter has in the model (a head tied to the input embeddings has two)."""
    return [name for name, other in model.named_parameters(remove_duplicate=False) if other is parameter]


def _checkpoint_tensor(source: str, names: list[str]) -> torch.Tensor | None:
    """The first of `names` found in a local folder's safetensors checkpoint, in float32; None if none is."""
    from safetensors import safe_open

    folder = Path(source)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = {name: folder / file for name, file in json.loads(index.read_text())["weight_map"].items()}
    elif (folder / "model.safetensors").is_file():
        with safe_open(folder / "model.safetensors", framework="pt") as checkpoint:
            files = dict.fromkeys(checkpoint.keys(), folder / "model.safetensors")
    else:
        return None
    for name in names:
        if name in files:
            with safe_open(files[name], framework="pt") as checkpoint:
                return checkpoint.get_tensor(name).float()
    return None


def float32_copy(loaded: LoadedModel) -> torch.nn.Module:
    """A float32 copy of the loaded model, in eval mode: master weights for training every weight.

    When the shared model is in a half precision the checkpoint is read again, so the copy starts
    from the exact weights rather than their rounded half-precision values.
    """
    if loaded.model.dtype == torch.float32:
        return copy.deepcopy(loaded.model).eval()
    weights = _load_weights(loaded.source, loaded.kind, torch.float32, Path(loaded.source).is_dir())
    return weights.to(loaded.device).eval()


def _load_weights(source: str, kind: Kind, dtype: torch.dtype, local_only: bool) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.utils import logging as transformers_logging
    transformers_logging.disable_progress_bar()  # a bar for a sub-second local load is noise
    auto_class = AutoModelForMaskedLM if kind == "mlm" else AutoModelForCausalLM
    try:
        return auto_class.from_pretrained(source, dtype=dtype, local_files_only=local_only)
    except OSError as error:
        raise UserError(f"cannot load the model weights: {_first_line(error)}", where=source) from None


def _load_tokenizer(source: str, kind: Kind, local_only: bool) -> Any:
    from transformers import AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot load the tokenizer: {_first_line(error)}", where=source) from None
    if kind == "causal":
        _prepare_causal_tokenizer(tokenizer, source)
    elif tokenizer.mask_token is None:
        raise UserError("this masked LM's tokenizer has no mask token", where=source)
    return tokenizer


def _prepare_causal_tokenizer(tokenizer: Any, source: str) -> None:
    # Left padding keeps every row's last real token at position -1, where causal scoring reads.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError("this causal LM's tokenizer has neither a pad nor an eos token", where=source)
        tokenizer.pad_token = tokenizer.eos_token


# ---------------------------------------------------------------- fingerprints

def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the weights: names, shapes and an evenly spaced sample of each tensor.

    Values are rounded to bfloat16 first, so a checkpoint loaded in float32 or bfloat16, on any
    device, gets the same fingerprint.
    """
    digest = hashlib.sha256()
    for name, parameter in model.named_parameters():
        digest.update(f"{name}:{tuple(parameter.shape)};".encode())
        digest.update(_sample_bytes(parameter.detach()))
    return digest.hexdigest()[:16]


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of every element of every weight, exactly as stored: any write to any element changes it.

    The fingerprint samples elements to name a checkpoint cheaply; this reads them all (about a
    second for 135M parameters), to prove that a run left the weights as it found them.
    """
    digest = hashlib.blake2b(digest_size=16)
    for name, parameter in model.named_parameters():
        digest.update(f"{name}:{tuple(parameter.shape)}:{parameter.dtype};".encode())
        digest.update(parameter.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def _sample_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.reshape(-1)
    step = max(1, flat.numel() // _FINGERPRINT_SAMPLE)
    sample = flat[::step][:_FINGERPRINT_SAMPLE].to(torch.bfloat16).cpu()
    return sample.view(torch.int16).numpy().tobytes()


# ---------------------------------------------------------------- listing
