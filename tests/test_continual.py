"""`promptlab continual`: strategies over a sequence of toy tasks on a tiny model, metrics, files, resuming."""
from __future__ import annotations

import json

import pytest
from catalog_files import write_catalog
from click.testing import CliRunner
from fewshot_toys import TOY_FILES, sensitive_model

from promptlab.catalog.catalog import Catalog
from promptlab.cli import main
from promptlab.continual import forgetting as metrics
from promptlab.continual.sequence_suite import load_continual_suite


def _rows(task: str, words_by_label: dict[str, list[str]], copies: int, start: int, after: str = "") -> str:
    rows = [(word, label) for label, words in words_by_label.items() for word in words] * copies
    return "".join(json.dumps({"id": f"{task}{start + i}", "text": text + after, "label": label}) + "\n"
                   for i, (text, label) in enumerate(rows))


TOPICS = {"sports": ["sports news", "the sports"], "business": ["business news", "my business"],
          "tech": ["tech news", "this tech"]}
TRUTH = {"true": ["yes it is", "yes yes"], "false": ["no it is not", "no no"]}
SEQUENCE_FILES = {
    **TOY_FILES,
    "tasks/topic.yaml": "labels: [sports, business, tech]\ndata: {train: data/topic-train.jsonl, "
                        "test: data/topic-test.jsonl}\n",
    "templates/topic/t1.jinja": "{{ text }} topic {{ mask }}",
    "verbalizers/topic/default.yaml": "labels:\n  sports: [sports]\n  business: [business]\n  tech: [tech]\n",
    "tasks/data/topic-train.jsonl": _rows("topic", TOPICS, 4, 0),
    "tasks/data/topic-test.jsonl": _rows("topic", TOPICS, 2, 100, after=" ."),  # texts not in train
    "tasks/truth.yaml": 'labels: ["true", "false"]\ndata: {train: data/truth-train.jsonl, test: data/truth-test.jsonl}\n',
    "templates/truth/t1.jinja": "{{ text }} answer {{ mask }}",
    "verbalizers/truth/default.yaml": 'labels:\n  "true": ["yes"]\n  "false": ["no"]\n',
    "tasks/data/truth-train.jsonl": _rows("truth", TRUTH, 4, 0),
    "tasks/data/truth-test.jsonl": _rows("truth", TRUTH, 2, 100, after=" ."),
}
FAST = "{steps: 2, eval_every: 2, batch_size: 8}"
SUITE = f"""description: three toy tasks
model: MODEL
tasks: [{{toy: {{template: t1}}}}, topic, truth]
k: 2
seeds: [13]
limit: 6
strategies:
  - prompt-per-task: {FAST}
  - progressive: {{steps: 2, eval_every: 2, batch_size: 8, prompt_length: 2}}
  - lora-per-task: {{steps: 2, eval_every: 2, batch_size: 8, lr: 0.01}}
  - finetune-sequential: {{steps: 2, eval_every: 2, batch_size: 8, lr: 0.001}}
  - replay: {{steps: 2, eval_every: 2, batch_size: 8, lr: 0.001}}
"""
TASKS = "tasks: [{toy: {template: t1}}, topic, truth]"
REPLAY = "  - replay: {steps: 2, eval_every: 2, batch_size: 8, lr: 0.001}"
STRATEGIES = ("prompt-per-task", "progressive", "lora-per-task", "finetune-sequential", "replay")


@pytest.fixture(scope="module")
def catalog_root(tiny_gpt2_dir, tmp_path_factory):
    model = sensitive_model(tiny_gpt2_dir, tmp_path_factory.mktemp("sensitive-gpt2"))
    return write_catalog(tmp_path_factory.mktemp("sequence"),
                         {**SEQUENCE_FILES, "eval_suites/seq.yaml": SUITE.replace("MODEL", str(model))})


@pytest.fixture(scope="module")
def finished(catalog_root, tmp_path_factory):
    output = tmp_path_factory.mktemp("continual") / "out"
    result = CliRunner().invoke(main, ["continual", "seq", "--output", str(output), "--catalog", str(catalog_root),
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return output, json.loads(result.stdout.strip().splitlines()[-1])


def test_every_file_is_written_and_the_summary_has_every_strategy(finished):
    output, summary = finished
    for name in ("results.jsonl", "matrix.csv", "summary.json", "heatmap.png", "curve.png", "report.md"):
        assert (output / name).stat().st_size > 0, name
    assert json.loads((output / "summary.json").read_text()) == summary
    assert list(summary["strategies"]) == list(STRATEGIES) and summary["tasks"] == ["toy", "topic", "truth"]
    for strategy in summary["strategies"].values():
        assert {"average_accuracy", "bwt", "fwt", "accuracy_with_routing", "matrix"} <= set(strategy)
        matrix = strategy["matrix"]
        assert matrix[0][2] is None and all(value is not None for row in matrix[1:] for value in row)
        assert strategy["average_accuracy"] == pytest.approx(sum(matrix[2]) / 3)
    lines = (output / "matrix.csv").read_text().splitlines()
    assert lines[0] == "strategy,after_task,toy,topic,truth" and len(lines) == 1 + 3 * len(STRATEGIES)
    assert "| prompt-per-task |" in (output / "report.md").read_text()


def test_per_task_modules_cannot_forget(finished):
    _, summary = finished
    for name in ("prompt-per-task", "progressive", "lora-per-task"):
        matrix = summary["strategies"][name]["matrix"]
        assert summary["strategies"][name]["bwt"] == 0.0, name  # task j is scored exactly as when it was learned
        assert [matrix[i][0] for i in range(3)] == [matrix[0][0]] * 3
    assert summary["strategies"]["finetune-sequential"]["trainable_parameters"] > \
        summary["strategies"]["lora-per-task"]["trainable_parameters"] > 0


def test_the_router_separates_the_tasks(finished):
    _, summary = finished
    assert summary["routing_accuracy"] > 0.6  # chance is 1/3
    for strategy in summary["strategies"].values():
        assert strategy["accuracy_with_routing"] <= strategy["average_accuracy"] + 1e-9


def test_a_rerun_skips_finished_units_and_a_lost_unit_comes_back_identical(finished, catalog_root):
    output, summary = finished
    lines = (output / "results.jsonl").read_text().splitlines()
    (output / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # torn last line
    result = CliRunner().invoke(main, ["continual", "seq", "--output", str(output), "--catalog", str(catalog_root),
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    rerun = json.loads(result.stdout.strip().splitlines()[-1])
    # same seed, same numbers
    assert rerun["strategies"]["replay"]["matrix"] == summary["strategies"]["replay"]["matrix"]
    assert len((output / "results.jsonl").read_text().splitlines()) == len(lines)


def test_metrics_on_a_hand_made_matrix():
    matrix = [[0.9, 0.4, None], [0.7, 0.8, 0.5], [0.6, 0.7, 0.9]]
    assert metrics.average_accuracy(matrix) == pytest.approx((0.6 + 0.7 + 0.9) / 3)
    assert metrics.backward_transfer(matrix) == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)
    assert metrics.forward_transfer(matrix, [0.5, 0.3, 0.5]) == pytest.approx(((0.4 - 0.3) + (0.5 - 0.5)) / 2)
    assert metrics.seen_average(matrix) == pytest.approx([0.9, 0.75, (0.6 + 0.7 + 0.9) / 3])
    assert metrics.mean_matrix([matrix, matrix])[0][2] is None


@pytest.mark.parametrize("edit, message", [
    ((REPLAY, "  - reply: {}"), "unknown strategy 'reply'"),
    ((REPLAY, "  - replay: {stepz: 2}"), "no option 'stepz'"),
    ((TASKS, "tasks: [{toy: {template: t1}}, topic, nope]"), "unknown task 'nope'"),
    ((TASKS, "tasks: [toy]"), "at least two tasks"),
    ((TASKS, "tasks: [toy, topic]"), "names no default"),
])
def test_suite_mistakes_are_one_message_with_the_line(catalog_root, tmp_path, edit, message):
    text = (catalog_root / "eval_suites" / "seq.yaml").read_text().replace(*edit)
    (tmp_path / "bad.yaml").write_text(text)
    result = CliRunner().invoke(main, ["continual", str(tmp_path / "bad.yaml"), "--output", str(tmp_path / "out"),
                                       "--catalog", str(catalog_root)])
    assert result.exit_code == 2 and message in result.output and "bad.yaml" in result.output
    assert "Traceback" not in result.output


def test_builtin_suites_load():
    catalog = Catalog.from_options()
    quick = load_continual_suite("continual-quick", catalog)
    full = load_continual_suite("continual", catalog)
    assert len(quick.tasks) == 3 and len(full.tasks) == 4
    assert set(quick.strategies) == set(STRATEGIES)
    assert set(full.strategies) == set(STRATEGIES)


def test_a_unit_made_with_other_weights_runs_again(finished, catalog_root, tmp_path):
    output, summary = finished
    copied = tmp_path / "out"
    copied.mkdir()
    rows = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
    assert len({row["dtype"] for row in rows}) == 1 and len({row["model_fingerprint"] for row in rows}) == 1
    rows[0]["model_fingerprint"] = "0" * 16  # as if the model's folder had held other weights then
    (copied / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = CliRunner().invoke(main, ["continual", "seq", "--output", str(copied), "--catalog", str(catalog_root),
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    rewritten = [json.loads(line) for line in (copied / "results.jsonl").read_text().splitlines()]
    assert len(rewritten) == len(rows) + 1 and rewritten[-1]["key"] == rows[0]["key"]
    assert rewritten[-1]["model_fingerprint"] == rows[1]["model_fingerprint"]
    assert untimed(json.loads(result.stdout.strip().splitlines()[-1])) == untimed(summary)


def untimed(summary):
    """The summary without its wall-clock figures, which a rerun unit measures anew."""
    if isinstance(summary, dict):
        return {key: untimed(value) for key, value in summary.items() if not key.startswith("seconds")}
    return [untimed(value) for value in summary] if isinstance(summary, list) else summary
