"""Build small catalogs on disk for tests."""
from __future__ import annotations

from pathlib import Path

NLI_FILES = {
    "tasks/nli.yaml": "labels: [entailment, neutral, contradiction]\ndata: {test: data/test.jsonl}\n",
    "templates/nli/t1.jinja": "{{ premise }} Question: {{ hypothesis }}? Answer: {{ mask }}.",
    "verbalizers/nli/default.yaml": ("labels:\n  entailment: [\"yes\", \"it is true\"]\n"
                                     "  neutral: [maybe, \"not sure\"]\n  contradiction: [\"no\", \"not at all\"]\n"),
    "tasks/data/test.jsonl": "".join(
        f'{{"premise": "{p}", "hypothesis": "{h}", "label": "{label}"}}\n' for p, h, label in [
            ("the movie was great", "the movie was good", "entailment"),
            ("it was a terrible movie", "the movie was great", "contradiction"),
            ("the film was long", "it was a great movie", "neutral"),
            ("a good movie", "the movie was bad", 2),
        ]),
}

SENTIMENT_FILES = {
    "tasks/toy.yaml": "labels: [negative, positive]\ndata: {test: data/test.jsonl, train: data/train.jsonl}\n",
    "templates/toy/t1.jinja": "{{ text }} It was {{ mask }}.",
    "verbalizers/toy/default.yaml": "labels:\n  negative: [terrible, bad]\n  positive: great\n",
    "tasks/data/test.jsonl": "".join(f'{{"text": "{t}", "label": "{label}"}}\n' for t, label in [
        ("a great movie", "positive"), ("a terrible movie", "negative"), ("good fun", "positive"),
        ("bad and boring", "negative"), ("the movie was great", "positive"), ("it was bad", "negative")]),
    "tasks/data/train.jsonl": "".join(f'{{"text": "{t}", "label": {label}}}\n' for t, label in [
        ("great", 1), ("terrible", 0), ("good", 1), ("bad", 0)] * 4),
}


def write_file(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def write_catalog(root: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        write_file(root / relative, content)
    return root
