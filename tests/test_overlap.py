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


def test_entity_sentences_whose_tokens_are_in_test_are_dropped(capsys):
    test = [{"id": "0", "tokens": ["Japan", "won"], "tags": ["B-LOC", "O"], "document": 0}]
    train = [{"id": "0", "tokens": ["Japan", "won"], "tags": ["B-ORG", "O"], "document": 3},  # other tags: a copy
             {"id": "1", "tokens": ["Japan", "lost"], "tags": ["B-LOC", "O"], "document": 0},
             {"id": "2", "tokens": ["japan", "won"], "tags": ["B-LOC", "O"], "document": 0}]  # exact tokens only
    kept = train_pool_without_test_texts(train, test, where="tasks/ner.yaml")
    assert [example["id"] for example in kept] == ["1", "2"]
    assert "1 train example(s) have the text of a test example" in capsys.readouterr().err


def test_entity_fewshot_never_samples_a_test_sentence(tmp_path, tiny_bert_dir):
    from entity_files import TWEET_FILES, conll, tweets

    files = {**TWEET_FILES, "tasks/data/tweets-train.conll": conll(tweets(40, seed=1) + tweets(12, seed=2))}
    root = write_catalog(tmp_path / "catalog", files)  # train sentences 40-51 are the 12 test sentences
    result = CliRunner().invoke(main_cli(), ["fewshot", "--catalog", str(root), "--task", "tweetner", "--model",
                                             str(tiny_bert_dir), "--method", "token-finetune", "--k", "2", "--steps",
                                             "1", "--seeds", "1,2,3", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "12 train example(s) have the text of a test example" in result.output
    summary = json.loads((tmp_path / "out" / "fewshot.json").read_text())
    sampled = [int(identifier) for run in summary["per_seed"]
               for identifier in run["sample"]["train_ids"] + run["sample"]["dev_ids"]]
    assert sampled and max(sampled) < 40
