"""`promptlab eval` suites over entity tasks: units run as `fewshot`/`zeroshot` run them, F1 in every report,
reruns skip finished units; entity and text tasks in one suite each get their own methods and metrics."""
from __future__ import annotations

import csv
import io
import json

import pytest
from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner
import span_counts
from entity_files import TWEET_FILES, TYPES, fewshot_run, one_thread, tweets  # noqa: F401 (an autouse fixture)
from span_counts import conll_columns

from promptlab.catalog.catalog import Catalog
from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.evaluation.runner import RESULTS_FILE, run_suite
from promptlab.evaluation.suite import expand, load_suite

SUITE = """\
description: tiny entity curve
tasks: [tweetner]
models: [{lm}]
methods:
  - zeroshot: {{calibrate: contextual}}
  - entity-prompt: {{steps: 2}}
  - token-finetune: {{model: {tagger}, steps: 30, lr: 0.003, label: token-finetune-bert}}
shots: [0, 2]
seeds: [13, 21]
"""
GRID = 1 + 2 + 2  # zero-shot once, each few-shot method once per seed


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_gpt2_dir, tiny_bert_dir):
    root = tmp_path_factory.mktemp("ner-eval")
    catalog = write_catalog(root / "catalog", {**TWEET_FILES, "eval_suites/ner-toy.yaml": SUITE.format(
        lm=tiny_gpt2_dir, tagger=tiny_bert_dir)})
    arguments = ["eval", "ner-toy", "--catalog", str(catalog), "--output", str(root / "out"), "--device", "cpu",
                 "--json"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return root, catalog, arguments, json.loads(result.stdout.strip().splitlines()[-1])


def rows_of(folder):
    return [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines()]


def test_units_record_f1_and_per_type_scores(evaluated, tiny_gpt2_dir, tiny_bert_dir):
    root, _, _, summary = evaluated
    assert (summary["runs"], summary["ran"], summary["skipped"]) == (GRID, GRID, 0)
    rows = rows_of(root / "out")
    assert [(row["label"], row["k"], row["seed"]) for row in rows] == [
        ("zeroshot (contextual)", 0, None), ("entity-prompt", 2, 13), ("entity-prompt", 2, 21),
        ("token-finetune-bert", 2, 13), ("token-finetune-bert", 2, 21)]
    for row in rows:
        assert row["kind"] == "entities" and {"f1", "precision", "recall"} <= set(row["metrics"])
        assert set(row["per_type"]) == set(TYPES) and row["n_test"] == 12
        precision, recall = row["metrics"]["precision"], row["metrics"]["recall"]  # micro F1: their harmonic mean
        assert row["metrics"]["f1"] == pytest.approx(2 * precision * recall / (precision + recall) if recall else 0.0)
    zero, prompted, tagged = rows[0], rows[1], rows[3]
    assert zero["model"] == str(tiny_gpt2_dir) and zero["method_options"]["calibrate"] == "contextual"
    alone = CliRunner().invoke(main, ["zeroshot", "--task", "tweetner", "--catalog", str(root / "catalog"), "--model",
                                      str(tiny_gpt2_dir), "--calibrate", "contextual", "--output", str(root / "zero")])
    assert alone.exit_code == 0, alone.output
    assert_counted_by_hand(zero, root / "zero" / "predictions.conll")
    assert prompted["train_steps"] == 2 and "dev_candidate_accuracy" in prompted["metrics"] and prompted["sample"]
    assert tagged["model"] == str(tiny_bert_dir) and tagged["model_kind"] == "token-classification"
    assert tagged["method_options"]["lr"] == 0.003 and "dev_f1" in tagged["metrics"]


def test_a_unit_scores_what_fewshot_scores(evaluated, tiny_bert_dir, tmp_path):
    root, catalog, _, _ = evaluated
    fewshot = fewshot_run(catalog, tiny_bert_dir, tmp_path, "--method", "token-finetune", "--k", 2, "--seeds", 13,
                          "--steps", 30, "--lr", 0.003)
    (unit,) = [row for row in rows_of(root / "out") if row["method"] == "token-finetune" and row["seed"] == 13]
    assert unit["sample"] == fewshot["per_seed"][0]["sample"]
    assert_counted_by_hand(unit, tmp_path / "seed-13" / "predictions.conll")


def assert_counted_by_hand(unit: dict, predictions) -> None:
    """The unit's F1, precision and recall, overall and per type, are those of exact-span matches counted here
    between the test file's gold tags and the tags in `predictions` (the same run's predictions.conll)."""
    gold_rows = tweets(12, seed=2)  # TWEET_FILES' test split, read from its source rather than promptlab's copy
    tokens, _, predicted = conll_columns(predictions)
    assert tokens == [[token for token, _ in row] for row in gold_rows]
    gold = [[tag for _, tag in row] for row in gold_rows]
    counted = span_counts.scores(gold, predicted)
    assert counted["f1"] > 0  # spans were found, so the comparison below says something
    assert unit["metrics"]["f1"] == pytest.approx(counted["f1"])
    assert (unit["metrics"]["precision"], unit["metrics"]["recall"]) == pytest.approx((counted["precision"],
                                                                                       counted["recall"]))
    for kind in TYPES:
        assert unit["per_type"][kind]["f1"] == pytest.approx(span_counts.scores(gold, predicted, kind)["f1"])


def test_reports_show_f1(evaluated, tiny_bert_dir):
    root, _, _, _ = evaluated
    report = (root / "out" / "report.md").read_text()
    assert "F1, mean ± std (runs):" in report and "accuracy, mean" not in report and "![F1 against k]" in report
    assert f"## tweetner · {tiny_bert_dir}" in report and "| token-finetune-bert | 0." in report
    assert "| method | k | runs | F1 | precision | recall | s/run |" in report
    lines = list(csv.DictReader((root / "out" / "summary.csv").open()))
    assert {"f1_mean", "f1_std", "precision_mean", "recall_mean"} <= set(lines[0])
    assert [(line["method"], line["k"], line["runs"]) for line in lines] == [
        ("zeroshot (contextual)", "0", "1"), ("entity-prompt", "2", "2"), ("token-finetune-bert", "2", "2")]
    assert (root / "out" / "kshot_curve.png").read_bytes().startswith(b"\x89PNG")


def test_a_rerun_skips_every_finished_unit(evaluated):
    root, _, arguments, _ = evaluated
    before = (root / "out" / RESULTS_FILE).read_bytes()
    again = CliRunner().invoke(main, arguments)
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert (summary["ran"], summary["skipped"]) == (0, GRID)
    assert (root / "out" / RESULTS_FILE).read_bytes() == before


# ---------------------------------------------------------------- entity and text tasks in one suite

MIXED = """\
tasks: [toy, tweetner]
models: [lm]
methods:
  - zeroshot
  - majority
  - token-finetune: {model: tagger}
shots: [0, 2]
seeds: [1]
"""


def load(tmp_path, text):
    catalog = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES, **TWEET_FILES, "eval_suites/s.yaml": text})
    return load_suite("s", Catalog.from_options([catalog]))


def test_each_task_gets_the_methods_and_metrics_of_its_kind(tmp_path):
    suite = load(tmp_path, MIXED)
    assert [(config.task, config.method, config.model) for config in expand(suite)] == [
        ("toy", "zeroshot", "lm"), ("toy", "majority", "lm"), ("tweetner", "zeroshot", "lm"),
        ("tweetner", "token-finetune", "tagger")]
    assert suite.metrics == ("accuracy", "macro_f1", "f1", "precision", "recall")


@pytest.mark.parametrize("text, message, line", [
    (MIXED.replace("tasks: [toy, tweetner]", "tasks: [toy]"), "method 'token-finetune' applies to none", 6),
    (MIXED + "metrics: [accuracy]\n", "'metrics' lists none of task 'tweetner''s (f1, precision, recall)", 9),
    (MIXED.replace("  - majority\n", ""), "shots above 0 need a few-shot method", 6),
    (MIXED.replace("{model: tagger}", "{model: [a, b]}"), "the model of method 'token-finetune' must be a name", 6),
    (MIXED.replace("{model: tagger}", "{model: tagger, steps: 0}"), "must be a positive number", 6),
])
def test_suite_mistakes_name_the_line(tmp_path, text, message, line):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        load(tmp_path, text)
    assert caught.value.line == line


def test_a_k_the_train_pool_cannot_give_fails_before_any_unit(tmp_path):
    suite = load(tmp_path, MIXED.replace("tasks: [toy, tweetner]", "tasks: {toy: {}, tweetner: {shots: [0, 2, 40]}}"))
    with pytest.raises(UserError, match="task 'tweetner': entity type '.*' has .* mentions .* k=40 draws 80") as caught:
        run_suite(suite, tmp_path / "out", device="cpu")
    assert "tweetner: {shots: [0, 2]}" in caught.value.fix
    assert not (tmp_path / "out" / RESULTS_FILE).exists()


def test_token_finetune_units_made_with_other_encoder_weights_run_again(tmp_path, build_tiny_model):
    encoder = build_tiny_model("bert", tmp_path / "encoder")
    suite = load(tmp_path, "tasks: [tweetner]\nmodels: [unused]\nmethods:\n"
                           f"  - token-finetune: {{model: {encoder}, steps: 2}}\nshots: [2]\nseeds: [13, 21]\n")
    assert run_suite(suite, tmp_path / "out", device="cpu").ran == 2
    assert run_suite(suite, tmp_path / "out", device="cpu").ran == 0  # same weights: nothing to do
    build_tiny_model("bert", encoder, seed=1)  # the same folder now holds other weights
    log = io.StringIO()
    assert run_suite(suite, tmp_path / "out", device="cpu", log=log).ran == 2
    assert f"2 finished run(s) of '{encoder}' were made with other weights" in log.getvalue()
