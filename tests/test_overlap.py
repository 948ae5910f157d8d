"""No test text in a train pool: exact-text overlap and repeats are dropped with a notice."""
import json

from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner

from promptlab.data.overlap import train_pool_without_test_texts

TEST = [{"id": "t1", "text": "a great film", "label": "positive"},
        {"id": "t2", "text": "dull", "label": "negative"}]


def test_train_examples_whose_text_is_in_test_are_dropped(capsys):
    train = [{"id": "1", "text": "a great film", "label": "positive"},  # a test text, another id
             {"id": "2", "text": "fine", "label": "positive"},
             {"id": "3", "text": "fine", "label": "negative"},  # a repeat inside train: no leak, kept
             {"id": "4", "text": "dull", "label": "negative", "score": 0.3},  # a number does not hide a copy
             {"id": "5", "text": "Dull", "label": "negative"}]  # exact text only
    kept = train_pool_without_test_texts(train, TEST, where="tasks/toy.yaml")
    assert [example["id"] for example in kept] == ["2", "3", "5"]
    notice = capsys.readouterr().err
    assert "tasks/toy.yaml" in notice and "2 train example(s) have the text of a test example" in notice


def test_a_clean_pool_is_untouched_and_silent(capsys):
    train = [{"id": "1", "text": "fine", "label": "positive"}, {"id": "2", "title": "dull", "text": "x",
                                                                 "label": "negative"}]
    assert train_pool_without_test_texts(train, TEST, where="t") == train
    assert capsys.readouterr().err == ""


def test_fewshot_never_samples_a_test_text(tmp_path, tiny_gpt2_dir):
    files = dict(SENTIMENT_FILES)
    test_rows = [json.loads(line) for line in files["tasks/data/test.jsonl"].splitlines()]
    train_rows = [json.loads(line) for line in files["tasks/data/train.jsonl"].splitlines()]
    leaked = [{**row, "id": f"copy{index}"} for index, row in enumerate(test_rows)]
    files["tasks/data/train.jsonl"] = "".join(json.dumps(row) + "\n" for row in train_rows + leaked)
    root = write_catalog(tmp_path / "catalog", files)
    result = CliRunner().invoke(main_cli(), ["fewshot", "--catalog", str(root), "--task", "toy", "--template", "t1",
                                             "--model", str(tiny_gpt2_dir), "--method", "majority", "--k", "2",
                                             "--seeds", "1,2,3", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert f"{len(leaked)} train example(s) have the text of a test example" in result.output
    summary = json.loads((tmp_path / "out" / "fewshot.json").read_text())
    sampled = json.dumps(summary)
    assert "copy" not in sampled


def main_cli():
    from promptlab.cli import main
    return main
