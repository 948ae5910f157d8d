"""The assistant's files: answer files (loading, errors with file:line, lint), knowledge bases, and retrieval
checked against an independent computation of BM25, cosine similarity and weighted reciprocal rank fusion."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from promptlab.catalog.catalog import Catalog
from promptlab.catalog.lint import lint_catalog
from promptlab.data.knowledge import MAX_PASSAGE_CHARS, read_knowledge
from promptlab.errors import UserError

TASK = """description: A help desk's requests
labels: [password_reset, broken_hardware, it_question, office_hours]
data:
  test: test.jsonl
"""


def catalog_with(tmp_path: Path, answers: str, name: str = "default") -> Catalog:
    (tmp_path / "tasks").mkdir(exist_ok=True)
    (tmp_path / "tasks" / "helpdesk.yaml").write_text(TASK)
    (tmp_path / "tasks" / "test.jsonl").write_text(json.dumps({"text": "hi", "label": "it_question"}) + "\n")
    folder = tmp_path / "answers" / "helpdesk"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(answers)
    return Catalog.from_options([tmp_path])


GOOD = """variables: [name]
answers:
  password_reset: "Hi {{ name | default('there') }}, reset it at id.example.com."
  office_hours: "{{ name }}, we are open 8 to 18."
handoff: [broken_hardware]
retrieve: [it_question]
"""


def test_an_answer_file_loads_and_renders_the_requests_fields(tmp_path):
    catalog = catalog_with(tmp_path, GOOD)
    answers = catalog.answers(catalog.task("helpdesk"))
    assert answers.name == "default" and answers.handoff == ("broken_hardware",)
    assert [answers.path_for(label) for label in ("password_reset", "broken_hardware", "it_question")] == \
        ["template", "handoff", "retrieval"]
    assert answers.render("password_reset", {"text": "x"}) == "Hi there, reset it at id.example.com."
    assert answers.render("password_reset", {"text": "x", "name": "Ada"}) == "Hi Ada, reset it at id.example.com."
    assert answers.render("office_hours", {"text": "x", "name": "Ada"}) == "Ada, we are open 8 to 18."


def test_a_missing_field_is_an_error_naming_it_and_the_answers_line(tmp_path):
    catalog = catalog_with(tmp_path, GOOD)
    answers = catalog.answers(catalog.task("helpdesk"))
    with pytest.raises(UserError) as caught:
        answers.render("office_hours", {"text": "when are you open?"}, where=" 3")
    assert "'name' is undefined" in caught.value.what and "message 3 lacks a field" in caught.value.what
    assert caught.value.line == 4 and str(caught.value.where).endswith("default.yaml")


@pytest.mark.parametrize("text, line, words", [
    (GOOD.replace("office_hours:", "office_hour:"), 4, "not a label of task 'helpdesk'"),
    (GOOD.replace("{{ name }}, we", "{{ nme }}, we"), 4, "'nme', which is neither 'text' nor a declared"),
    (GOOD.replace("{{ name }}, we", "{{ name }, we"), 4, "template syntax error"),
    (GOOD.replace("handoff: [broken_hardware]", "handoff: [broken_hardware, office_hours]"), 5,
     "'office_hours' has an answer and is listed under 'handoff'"),
    (GOOD.replace("retrieve:", "retrieval:"), 6, "unknown key 'retrieval'"),
    (GOOD.replace("handoff:", "  office_hours: again\nhandoff:"), 5, "duplicate key 'office_hours'"),
])
def test_mistakes_in_an_answer_file_are_errors_with_file_and_line(tmp_path, text, line, words):
    catalog = catalog_with(tmp_path, text)
    with pytest.raises(UserError) as caught:
        catalog.answers(catalog.task("helpdesk"))
    assert words in caught.value.what and caught.value.line == line
    assert str(caught.value.where).endswith("answers/helpdesk/default.yaml")


def test_templates_check_reports_answer_file_errors_and_unlisted_labels(tmp_path):
    catalog = catalog_with(tmp_path, GOOD.replace("retrieve: [it_question]\n", ""))
    (tmp_path / "answers" / "helpdesk" / "broken.yaml").write_text(GOOD.replace("office_hours:", "office:"))
    problems = [problem for problem in lint_catalog(catalog, task="helpdesk")
                if "answers" in problem.where]
    assert [(p.severity, Path(p.where.split(":")[0]).name) for p in problems] == \
        [("error", "broken.yaml"), ("warning", "default.yaml")]
    assert problems[0].where.endswith("broken.yaml:4") and "'office'" in problems[0].message
    assert "it_question" in problems[1].message


def test_the_shipped_banking77_answers_cover_every_intent_and_pass_the_lint():
    catalog = Catalog.from_options(())
    task = catalog.task("banking77")
    answers = catalog.answers(task)
    assert answers.unlisted(task.labels) == [] and "lost_or_stolen_card" in answers.handoff
    assert not [p for p in lint_catalog(catalog, task="banking77") if "answers" in p.where]
    passages = read_knowledge(Path(catalog.roots[0]) / "answers" / "banking77" / "knowledge.jsonl")
    assert sorted(passage.id for passage in passages) == sorted(task.labels)


# ---------------------------------------------------------------- knowledge bases

def test_markdown_documents_are_split_into_passages_with_their_offsets(tmp_path):
    paragraph = "word " * 150  # 750 characters: two paragraphs do not fit one passage
    text = f"# VPN from home\n\n{paragraph.strip()}\n\n{paragraph.strip()}\n\nLast line."
    (tmp_path / "network").mkdir()
    (tmp_path / "network" / "vpn.md").write_text(text)
    (tmp_path / "printer.md").write_text("Printers are on floor 2.")
    passages = read_knowledge(tmp_path)
    assert [p.id for p in passages] == ["network/vpn#0", "network/vpn#1", "printer"]
    assert {p.title for p in passages} == {"VPN from home", "printer"}
    for passage in passages[:2]:
        assert text[passage.start:passage.end] == passage.text and len(passage.text) <= MAX_PASSAGE_CHARS
    assert passages[1].text.endswith("Last line.") and passages[0].document == "network/vpn"


def test_a_document_without_text_is_an_error_with_its_line(tmp_path):
    base = tmp_path / "kb.jsonl"
    base.write_text(json.dumps({"id": "a", "text": "fine"}) + "\n" + json.dumps({"id": "b", "title": "t"}) + "\n")
    with pytest.raises(UserError) as caught:
        read_knowledge(base)
    assert caught.value.line == 2 and "'text'" in caught.value.what


# ---------------------------------------------------------------- retrieval

DOCUMENTS = [
    ("vpn", "VPN", "Connect to the VPN with the GlobalConnect client and your staff account."),
    ("printer", "Printers", "Printers are on the second floor; send jobs to the queue named floor2."),
    ("wifi", "Wireless network", "The guest wifi password changes every Monday and is shown at reception."),
    ("laptop", "Laptops", "Broken laptops are swapped at the IT desk within one day."),
    ("holiday", "Holidays", "Request holidays in the HR portal at least two weeks ahead."),
    ("expenses", "Expenses", "Expense claims need a receipt and are paid with the next salary."),
]
QUERIES = ["how do I connect to the VPN from home", "where can I print", "what is the wifi password for guests",
           "my laptop broke", "claim a taxi receipt"]


@pytest.mark.offline_models
def test_search_ranks_as_bm25_and_cosine_fused_by_reciprocal_rank(tmp_path):
    pytest.importorskip("bm25s")
    from bm25s.stopwords import STOPWORDS_EN
    from sentence_transformers import SentenceTransformer

    from promptlab.apply.knowledge_index import open_index
    from promptlab.backends.sentence_encoders import resolve_encoder

    base = tmp_path / "kb.csv"
    base.write_text("id,title,text\n" + "".join(f'{i},{t},"{x}"\n' for i, t, x in DOCUMENTS))
    index = open_index(base, encoder="minilm-l6", device="cpu")
    found = index.search(QUERIES, k=6)

    # the reference: sentence-transformers directly, a hand-written BM25 (Lucene idf, k1 1.5, b 0.75), RRF with
    # k = 10 and the sparse ranking weighted 0.3
    model = SentenceTransformer(resolve_encoder("minilm-l6"), device="cpu")
    texts = [f"{title}. {text}" for _, title, text in DOCUMENTS]
    passages = model.encode(texts, normalize_embeddings=True)
    queries = model.encode(QUERIES, normalize_embeddings=True)

    def words(text):
        return [w for w in re.findall(r"(?u)\b\w\w+\b", text.lower()) if w not in STOPWORDS_EN]

    documents = [words(text) for text in texts]
    average = sum(map(len, documents)) / len(documents)

    def bm25(query, document):
        score = 0.0
        for term in set(words(query)):
            frequency = document.count(term)
            having = sum(term in d for d in documents)
            if frequency:
                idf = math.log(1 + (len(documents) - having + 0.5) / (having + 0.5))
                score += idf * frequency * 2.5 / (frequency + 1.5 * (0.25 + 0.75 * len(document) / average))
        return score

    for query, vector, hits in zip(QUERIES, queries, found):
        cosine = passages @ vector
        dense = sorted(range(len(texts)), key=lambda i: -cosine[i])
        sparse_scores = [bm25(query, document) for document in documents]
        sparse = sorted((i for i in range(len(texts)) if sparse_scores[i] > 0), key=lambda i: -sparse_scores[i])
        fused = {i: 1 / (10 + dense.index(i) + 1) + (0.3 / (10 + sparse.index(i) + 1) if i in sparse else 0)
                 for i in range(len(texts))}
        expected = sorted(fused, key=lambda i: (-fused[i], i))
        assert [hit.passage.id for hit in hits] == [DOCUMENTS[i][0] for i in expected], query
        assert [hit.score for hit in hits] == pytest.approx([fused[i] for i in expected])
        # bfloat16 encoders: the index's own encoder may run in bfloat16 where the CPU computes it natively
        assert [hit.similarity for hit in hits] == pytest.approx([float(cosine[i]) for i in expected], abs=5e-3)
    assert [hits[0].passage.id for hits in found] == ["vpn", "printer", "wifi", "laptop", "expenses"]


@pytest.mark.offline_models
def test_the_index_is_built_once_and_rebuilt_when_the_files_change(tmp_path, monkeypatch):
    from promptlab.apply.knowledge_index import open_index
    from promptlab.backends.sentence_encoders import load_encoder

    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "cache"))
    encoder = load_encoder("minilm-l6", device="cpu")
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("# A\nThe first document.")
    first = open_index(tmp_path / "kb", loaded=encoder)
    again = open_index(tmp_path / "kb", loaded=encoder)
    assert again.folder == first.folder and np.array_equal(again.embeddings, first.embeddings)
    (tmp_path / "kb" / "b.md").write_text("# B\nA second document.")
    changed = open_index(tmp_path / "kb", loaded=encoder)
    assert changed.folder != first.folder and len(changed.passages) == 2
    assert sorted(path.name for path in first.folder.iterdir()) == ["embeddings.npy", "index.json", "passages.jsonl"]


@pytest.mark.offline_models
def test_faiss_search_finds_what_exact_search_finds(tmp_path):
    pytest.importorskip("faiss")
    from promptlab.apply.knowledge_index import KnowledgeIndex, open_index

    base = tmp_path / "kb.jsonl"
    base.write_text("".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCUMENTS))
    exact = open_index(base, search="exact")
    graph = KnowledgeIndex(exact.passages, exact.embeddings, exact.encoder, search="faiss")
    assert (exact.kind, graph.kind) == ("exact", "faiss")
    found, expected = graph.search(QUERIES, k=4), exact.search(QUERIES, k=4)
    assert [[hit.passage.id for hit in hits] for hits in found] == \
        [[hit.passage.id for hit in hits] for hits in expected]
    similarities = [hit.similarity for hits in expected for hit in hits]
    assert [hit.similarity for hits in found for hit in hits] == pytest.approx(similarities, abs=1e-5)


def test_the_command_lines_defaults_are_the_assistants():
    from promptlab.apply.assist import DEFAULT_INTENT_THRESHOLD, DEFAULT_RETRIEVAL_THRESHOLD, DEFAULT_TOP_PASSAGES
    from promptlab.cli import main

    for command in ("assist", "serve"):
        defaults = {param.name: param.default for param in main.commands[command].params}
        assert (defaults["intent_threshold"], defaults["retrieval_threshold"], defaults["top_passages"]) == \
            (DEFAULT_INTENT_THRESHOLD, DEFAULT_RETRIEVAL_THRESHOLD, DEFAULT_TOP_PASSAGES)
