"""Knowledge bases: the documents the assistant answers new questions from, read into passages.

    --knowledge FILE.jsonl | FILE.csv    one document a row: `text`, and optionally `id`, `title`, `link`
    --knowledge FOLDER                   Markdown files (*.md, searched recursively): a first `# heading`
                                         is the title (the passages start after it), the path under the
                                         folder without .md the id

A document longer than MAX_PASSAGE_CHARS is split at paragraph breaks (else at a space) into
passages of at most that length; each passage keeps its document's id, title and link, and its
character offsets `start`/`end` in the document's text. A passage of a split document has the id
`<document id>#<n>`.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from promptlab.errors import UserError

MAX_PASSAGE_CHARS = 1200
FILE_SUFFIXES = (".jsonl", ".csv")
_HEADING = re.compile(r"\A\s*#\s+(.+)\n?")


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str
    document: str  # the id of the document it comes from
    start: int  # offsets of `text` in the document's text
    end: int
    link: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def read_knowledge(path: str | Path) -> list[Passage]:
    """Every passage of the knowledge base at `path`, in document order."""
    path = Path(path).expanduser()
    if path.is_dir():
        documents = _markdown_documents(path)
    elif path.suffix.lower() in FILE_SUFFIXES and path.is_file():
        documents = _rows(path)
    else:
        raise UserError("no knowledge base here" if not path.exists() else "a knowledge base is a .jsonl or .csv "
                        "file or a folder of Markdown files", where=path,
                        fix="pass --knowledge FILE.jsonl|FILE.csv|FOLDER")
    if not documents:
        raise UserError("the knowledge base holds no documents", where=path, fix="add rows or .md files")
    ids = set()
    passages = []
    for document in documents:
        if document["id"] in ids:
            raise UserError(f"two documents have the id '{document['id']}'", where=document["where"],
                            fix="give every document its own id")
        ids.add(document["id"])
        passages += split_document(document)
    return passages


def content_hash(path: str | Path) -> str:
    """A hash of the knowledge base's files (names and bytes): the index is rebuilt when it changes."""
    path = Path(path).expanduser().resolve()
    digest = hashlib.sha256()
    for file in ([path] if path.is_file() else sorted(path.rglob("*.md"))):
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def split_document(document: dict) -> list[Passage]:
    """The document's passages, each at most MAX_PASSAGE_CHARS long, with their offsets."""
    text = document["text"]
    spans, start = [], document.get("body_start", 0)
    while start < len(text):
        while start < len(text) and text[start].isspace():
            start += 1
        if start >= len(text):
            break
        end = min(len(text), start + MAX_PASSAGE_CHARS)
        if end < len(text):  # cut at the last paragraph break, else the last space, in the window
            window = text[start:end]
            cut = window.rfind("\n\n")
            cut = cut if cut > 0 else window.rfind(" ")
            end = start + cut if cut > 0 else end
        piece = text[start:end].rstrip()
        spans.append((start, start + len(piece)))
        start = end
    several = len(spans) > 1
    return [Passage(f"{document['id']}#{number}" if several else document["id"], document["title"],
                    text[begin:finish], document["id"], begin, finish, document["link"])
            for number, (begin, finish) in enumerate(spans)]


def _rows(path: Path) -> list[dict]:
    documents = []
    if path.suffix.lower() == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise UserError(f"not JSON: {error.msg}", where=path, line=number) from None
                documents.append(_document(row, path, number))
    else:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), start=2):
                documents.append(_document(row, path, number))
    return documents


def _document(row, path: Path, line: int) -> dict:
    if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
        raise UserError("a document needs a non-empty 'text'", where=path, line=line,
                        fix='write rows like {"id": "fees", "title": "Fees", "text": "..."}')
    return {"id": str(row.get("id") or f"row-{line}"), "title": str(row.get("title") or ""), "text": row["text"],
            "link": str(row.get("link") or ""), "where": f"{path}:{line}"}


def _markdown_documents(folder: Path) -> list[dict]:
    documents = []
    for file in sorted(folder.rglob("*.md")):
        text = file.read_text(encoding="utf-8")
        heading = _HEADING.match(text)
        title = heading.group(1).strip() if heading else file.stem.replace("-", " ").replace("_", " ")
        documents.append({"id": file.relative_to(folder).with_suffix("").as_posix(), "title": title, "text": text,
                          "link": "", "where": str(file), "body_start": heading.end() if heading else 0})
    return documents
