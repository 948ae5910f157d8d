"""`--limit N` on a split or a user's file: the first N, or the eval suites' stratified sample, and the output says
which rows were taken."""
from __future__ import annotations

import json

from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner

from promptlab.cli import main
from promptlab.data.limits import limit_examples

SORTED = [{"id": f"r{index}", "text": f"review {index}", "label": "negative" if index < 8 else "positive"}
          for index in range(12)]  # a file sorted by label: 8 negative, then 4 positive


def test_the_first_n_of_a_sorted_file_hold_one_label_and_a_notice_says_so(capsys):
    taken = limit_examples(SORTED, 6, "first", where="mine.jsonl")
    assert [example["id"] for example in taken] == [f"r{index}" for index in range(6)]
    err = capsys.readouterr().err
    assert "mine.jsonl: --limit 6: the first 6 of 12 examples (--limit-by first)" in err
    assert "the first 6 hold 1 of the 2 labels; --limit-by stratified takes each label's share" in err


def test_a_stratified_limit_keeps_each_labels_share_in_file_order(capsys):
    taken = limit_examples(SORTED, 6, "stratified")
    labels = [example["label"] for example in taken]
    assert labels.count("negative") == 4 and labels.count("positive") == 2  # 8:4 of 12 is 4:2 of 6
    positions = [SORTED.index(example) for example in taken]
    assert positions == sorted(positions)
    assert "--limit 6: a stratified sample of 6 (seed 0) of 12 examples" in capsys.readouterr().err
    assert limit_examples(SORTED, 6, "stratified") == taken  # the same rows every time


def test_a_stratified_limit_is_the_eval_suites_sample(tmp_path):
    from promptlab.catalog.catalog import Catalog, Setup
    from promptlab.evaluation.units.text import load_task_data

    files = {**SENTIMENT_FILES, "tasks/data/test.jsonl": "".join(json.dumps(row) + "\n" for row in SORTED)}
    setup = Setup.load(Catalog.from_options([write_catalog(tmp_path / "catalog", files)]), "toy", "t1")
    suite = load_task_data(setup, 6, needs_train=False).test
    assert {example["id"] for example in limit_examples(SORTED, 6, "stratified")} == \
        {example["id"] for example in suite}


def test_sequences_without_one_label_are_sampled_uniformly_in_file_order():
    sentences = [{"id": str(index), "tokens": ["w"], "tags": ["O"]} for index in range(20)]
    taken = limit_examples(sentences, 5, "stratified")
    ids = [int(example["id"]) for example in taken]
    assert len(set(ids)) == 5 and ids == sorted(ids) and ids != list(range(5))


def test_no_limit_or_a_larger_one_takes_everything_silently(capsys):
    assert limit_examples(SORTED, None, "stratified") == SORTED
    assert limit_examples(SORTED, 50, "first") == SORTED
    assert capsys.readouterr().err == ""


def test_zeroshot_on_a_users_sorted_file_names_the_rows_it_took(tmp_path, tiny_gpt2_dir):
    root = write_catalog(tmp_path / "catalog", SENTIMENT_FILES)
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in SORTED))
    common = ["zeroshot", "--catalog", str(root), "--task", "toy", "--template", "t1", "--model", str(tiny_gpt2_dir),
              "--data", str(data), "--limit", "6", "--json", "--output"]
    first = CliRunner().invoke(main, [*common, str(tmp_path / "first")])
    stratified = CliRunner().invoke(main, [*common, str(tmp_path / "stratified"), "--limit-by", "stratified"])
    assert first.exit_code == stratified.exit_code == 0, first.output + stratified.output
    assert "--limit 6: the first 6 of 12 examples" in first.output and "1 of the 2 labels" in first.output
    assert "--limit 6: a stratified sample of 6 (seed 0) of 12 examples" in stratified.output

    def golds(folder):
        return [json.loads(line)["gold"] for line in (tmp_path / folder / "predictions.jsonl").read_text().splitlines()]
    assert golds("first") == ["negative"] * 6
    assert sorted(golds("stratified")) == ["negative"] * 4 + ["positive"] * 2


def test_help_names_the_choices_and_the_default():
    for command in ("zeroshot", "fewshot"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert "--limit-by [first|stratified]" in result.output and "[default: first]" in result.output
