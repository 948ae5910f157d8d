"""CR-like product review snippets, from the `vaderSentiment` sdist."""
from __future__ import annotations

import io
import tarfile

from promptlab.data.sources.base import Files, Parsed, Source, SplitPlan, only_file

CR_INNER_MEMBER = "hutto_ICWSM_2014/amazonReviewSnippets_GroundTruth.txt"


def parse_cr(files: Files) -> Parsed:
    with tarfile.open(fileobj=io.BytesIO(only_file(files))) as inner:
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


SOURCES = [
    Source(
        name="cr", description="product review snippets, positive or negative (Hu & Liu texts, VADER ratings)",
        package="vaderSentiment", version="3.3.2", archive_kind="sdist",
        member="vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz",
        labels=["negative", "positive"], fields=["text"],
        licence=("vaderSentiment is MIT-licensed; the snippets are third-party Amazon review texts: "
                 "fetched into the local cache, never committed."),
        parse=parse_cr, plan=SplitPlan(test=0.5)),
]
