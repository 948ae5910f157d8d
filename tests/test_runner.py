import io
import json
from collections import Counter

import pytest
from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner

from promptlab import methods

from promptlab.evaluation import runner

from promptlab.evaluation import units
from promptlab.catalog.catalog import Catalog
from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.backends.models import cpu_has_native_bfloat16, load_model
from promptlab.evaluation.runner import (
    RESULTS_FILE,
    execution_order,
    load_data,
    run_key,
    run_suite,
)
from promptlab.evaluation.shared_results import ResultsFile
from promptlab.evaluation.suite import expand, load_suite
from promptlab.evaluation.units.text import load_task_data

SUITE = """\
description: toy curve
tasks: [toy]
models: [{model}]
methods:
  - zeroshot: {{calibrate: [none, contextual]}}
  - majority
shots: [0, 2, 4]
seeds: [1, 2]
"""
ZERO_SUITE = """\
description: toy zero-shot
tasks: [toy]
models: [{model}]
methods:
  - zeroshot: {{calibrate: [none, batch]}}
shots: [0]
"""
GRID_SIZE = 2 + 2 * 2  # zero-shot calibrations + k values x seeds of majority (the real one: it is fast)


@pytest.fixture
def patch_run_method(monkeypatch):
    """Replace run_method with `wrapper(real_run_method, method, **kwargs)`."""
    real = methods.run_method

    def patch(wrapper):
        monkeypatch.setattr(methods, "run_method", lambda method, **kwargs: wrapper(real, method, **kwargs))
    return patch


@pytest.fixture
def suite(tmp_path, tiny_gpt2_dir):
    catalog_root = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                                        "eval_suites/toy-curve.yaml": SUITE.format(model=tiny_gpt2_dir)})
    return load_suite("toy-curve", Catalog.from_options([catalog_root]))


def grid_keys(suite):
    """The grid's keys in the precision `--dtype auto` gives on this CPU."""
    configs = expand(suite)
    data = load_data(suite)
    precision = "bfloat16" if cpu_has_native_bfloat16() else "float32"
    return [run_key(config, data[config.task], precision) for config in configs]


def read_rows(folder):
    return [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines()]


def test_rows_carry_the_full_configuration(suite, tmp_path):
    outcome = run_suite(suite, tmp_path / "out", device="cpu")
    rows = read_rows(tmp_path / "out")
    assert (outcome.runs, outcome.ran, outcome.skipped) == (GRID_SIZE, GRID_SIZE, 0)
    assert [row["key"] for row in rows] == grid_keys(suite)
    row = rows[0]
    for field in ("suite", "task", "model", "template", "template_hash", "verbalizer", "verbalizer_hash", "method",
                  "label", "options", "k", "seed", "limit", "model_fingerprint", "n_test", "seconds", "finished"):
        assert field in row, field
    assert row["template_hash"] == suite.setups["toy"][0].template.content_hash
    assert set(row["versions"]) >= {"python", "torch", "transformers", "promptlab"}
    assert set(row["metrics"]) == {"accuracy", "macro_f1"}
    few_shot = rows[-1]
    assert few_shot["k"] == 4 and few_shot["seed"] == 2
    assert set(few_shot["metrics"]) == {"accuracy", "macro_f1", "dev_accuracy"}
    assert few_shot["method_options"] == {} and few_shot["sample"] and few_shot["confusion"]["labels"] == ["negative", "positive"]


def test_rerun_adds_no_rows_and_runs_nothing(suite, tmp_path, monkeypatch):
    run_suite(suite, tmp_path / "out", device="cpu")
    before = (tmp_path / "out" / RESULTS_FILE).read_bytes()
    # The model is loaded once, to check that its name still loads the weights the rows were made with.
    monkeypatch.setattr(runner, "run_one", lambda *args, **kwargs: pytest.fail("ran a finished run"))
    outcome = run_suite(suite, tmp_path / "out", device="cpu")
    assert (outcome.ran, outcome.skipped, len(outcome.rows)) == (0, GRID_SIZE, GRID_SIZE)
    assert (tmp_path / "out" / RESULTS_FILE).read_bytes() == before


def test_interrupted_run_resumes_to_exactly_the_full_set(suite, tmp_path, patch_run_method):
    calls = []

    def interrupted_at_the_third(real, method, **kwargs):
        calls.append(method)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(method, **kwargs)

    patch_run_method(interrupted_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path / "out", device="cpu")
    assert len(read_rows(tmp_path / "out")) == 2 + 2  # both zero-shot runs and two few-shot runs

    patch_run_method(lambda real, method, **kwargs: real(method, **kwargs))
    outcome = run_suite(suite, tmp_path / "out", device="cpu")
    keys = [row["key"] for row in read_rows(tmp_path / "out")]
    assert outcome.ran == GRID_SIZE - 4
    assert sorted(keys) == sorted(grid_keys(suite))


def test_torn_last_line_is_cut_and_its_run_redone(suite, tmp_path):
    run_suite(suite, tmp_path / "out", device="cpu")
    path = tmp_path / "out" / RESULTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:40])  # killed while writing the last row
    outcome = run_suite(suite, tmp_path / "out", device="cpu")
    assert outcome.ran == 1
    assert path.read_text().count("\n") == GRID_SIZE
    assert sorted(row["key"] for row in read_rows(tmp_path / "out")) == sorted(grid_keys(suite))


def test_changed_data_is_a_new_run(suite, tmp_path):
    run_suite(suite, tmp_path / "out", device="cpu")
    test_file = suite.setups["toy"][0].task.path.parent / "data" / "test.jsonl"
    test_file.write_text(test_file.read_text().replace("a great movie", "a great film"))
    outcome = run_suite(suite, tmp_path / "out", device="cpu")
    assert outcome.ran == GRID_SIZE
    assert len(read_rows(tmp_path / "out")) == 2 * GRID_SIZE


def test_too_few_training_examples_for_a_k_fail_before_any_run(tmp_path, tiny_gpt2_dir):
    suite_text = SUITE.format(model=tiny_gpt2_dir).replace("shots: [0, 2, 4]", "shots: [0, 2, 5]")
    catalog_root = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES, "eval_suites/big-k.yaml": suite_text})
    suite = load_suite("big-k", Catalog.from_options([catalog_root]))
    with pytest.raises(UserError, match="has 8 training examples, but k=5 draws 10") as caught:
        run_suite(suite, tmp_path / "out", device="cpu")
    assert "shots: [0, 2]" in caught.value.fix
    assert not (tmp_path / "out" / RESULTS_FILE).exists()


def test_broken_line_inside_the_file_is_a_user_error(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(UserError, match="not a JSON row") as caught:
        with ResultsFile(path):
            pass
    assert caught.value.line == 2


def test_second_writer_is_refused(tmp_path):
    with ResultsFile(tmp_path / RESULTS_FILE):
        with pytest.raises(UserError, match="another promptlab eval"):
            with ResultsFile(tmp_path / RESULTS_FILE):
                pass


def test_runs_go_method_by_method(tmp_path):
    suite_text = SUITE.format(model="m").replace("  - majority\n", "  - majority\n  - softprompt: {steps: 1}\n")
    catalog_root = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES, "eval_suites/two.yaml": suite_text})
    two_methods = load_suite("two", Catalog.from_options([catalog_root]))
    configs = expand(two_methods)
    assert [config.method for config in configs][2:5] == ["majority", "majority", "softprompt"]  # grid: k, method, seed
    ordered = [config for _, config in execution_order(two_methods, [("", config) for config in configs])]
    assert [(config.method, config.k) for config in ordered] == [("zeroshot", 0)] * 2 + [("majority", 2)] * 2 + \
        [("majority", 4)] * 2 + [("softprompt", 2)] * 2 + [("softprompt", 4)] * 2


def test_limit_takes_a_stratified_sample(suite):
    setup = suite.setups["toy"][0]
    test = load_task_data(setup, 4, needs_train=False).test
    assert Counter(example["label"] for example in test) == {"negative": 2, "positive": 2}
    assert test == load_task_data(setup, 4, needs_train=False).test


def test_method_that_changes_the_weights_is_caught(suite, tmp_path, patch_run_method):
    def scribbling(real, method, *, loaded, **kwargs):
        next(loaded.model.parameters()).data.add_(1.0)
        return real(method, loaded=loaded, **kwargs)

    patch_run_method(scribbling)
    with pytest.raises(RuntimeError, match="left the model's weights changed"):
        run_suite(suite, tmp_path / "out", device="cpu")


def test_a_single_changed_element_is_caught(suite, tmp_path, patch_run_method):
    """One element that no evenly spaced sample reads, changed through .data (no version counter sees it)."""
    def scribbling(real, method, *, loaded, **kwargs):
        largest = max(loaded.model.parameters(), key=lambda parameter: parameter.numel())
        largest.data.view(-1)[1] += 0.5
        return real(method, loaded=loaded, **kwargs)

    patch_run_method(scribbling)
    with pytest.raises(RuntimeError, match="left the model's weights changed"):
        run_suite(suite, tmp_path / "out", device="cpu")


def test_eval_command_writes_everything_and_ends_with_json(tmp_path, tiny_gpt2_dir):
    write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                         "eval_suites/toy-curve.yaml": SUITE.format(model=tiny_gpt2_dir)})
    arguments = ["eval", "toy-curve", "--catalog", str(tmp_path / "catalog"), "--output", str(tmp_path / "out"),
                 "--device", "cpu", "--json"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["suite"] == "toy-curve" and summary["runs"] == GRID_SIZE and summary["ran"] == GRID_SIZE
    assert summary["output"] == str(tmp_path / "out") and summary["seconds"] > 0
    for name in (RESULTS_FILE, "summary.csv", "kshot_curve.png", "report.md"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    again = json.loads(CliRunner().invoke(main, arguments).stdout.strip().splitlines()[-1])
    assert (again["ran"], again["skipped"]) == (0, GRID_SIZE)
    assert len(read_rows(tmp_path / "out")) == GRID_SIZE


def test_eval_command_into_a_folder_made_in_another_precision_runs_again_and_reports_only_the_new_rows(tmp_path,
                                                                                                     tiny_gpt2_dir):
    write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                         "eval_suites/toy-curve.yaml": SUITE.format(model=tiny_gpt2_dir)})
    arguments = ["eval", "toy-curve", "--catalog", str(tmp_path / "catalog"), "--output", str(tmp_path / "out"),
                 "--device", "cpu", "--json"]

    def evaluate(dtype):
        result = CliRunner().invoke(main, [*arguments, "--dtype", dtype])
        assert result.exit_code == 0, result.output
        runs = sum(int(line.split(",")[6]) for line in (tmp_path / "out" / "summary.csv").read_text().splitlines()[1:])
        return json.loads(result.stdout.strip().splitlines()[-1]), runs

    full, full_runs = evaluate("float32")
    half, half_runs = evaluate("bfloat16")
    assert (full["dtype"], full["ran"], full_runs) == ("float32", GRID_SIZE, GRID_SIZE)
    assert (half["dtype"], half["ran"], half["skipped"]) == ("bfloat16", GRID_SIZE, 0)  # none of float32's taken
    assert half_runs == GRID_SIZE  # the reports cover this precision's runs only
    assert Counter(row["dtype"] for row in read_rows(tmp_path / "out")) == {"float32": GRID_SIZE, "bfloat16": GRID_SIZE}
    auto, auto_runs = evaluate("auto")  # whichever this CPU resolves it to, that precision's runs are there
    assert (auto["dtype"], auto["ran"], auto["skipped"], auto_runs) == (
        "bfloat16" if cpu_has_native_bfloat16() else "float32", 0, GRID_SIZE, GRID_SIZE)
    assert len(read_rows(tmp_path / "out")) == 2 * GRID_SIZE


def test_eval_command_reports_a_bad_suite_in_one_message(tmp_path):
    write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                         "eval_suites/bad.yaml": "tasks: [toy]\nmodels: [m]\nmethods: [zeroshot]\n"
                                                                 "shots: [0, 4]\n"})
    result = CliRunner().invoke(main, ["eval", "bad", "--catalog", str(tmp_path / "catalog"),
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "bad.yaml:4: shots above 0 need a few-shot method" in result.output
    assert "Traceback" not in result.output


def test_report_only_reports_the_finished_runs_of_a_stopped_suite(tmp_path, tiny_gpt2_dir, monkeypatch):
    write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                         "eval_suites/toy-curve.yaml": SUITE.format(model=tiny_gpt2_dir)})
    arguments = ["eval", "toy-curve", "--catalog", str(tmp_path / "catalog"), "--output", str(tmp_path / "out"),
                 "--device", "cpu", "--json"]
    assert CliRunner().invoke(main, arguments).exit_code == 0
    path = tmp_path / "out" / RESULTS_FILE
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))  # as if stopped after 3 runs
    for name in ("summary.csv", "kshot_curve.png", "report.md"):
        (tmp_path / "out" / name).unlink()
    monkeypatch.setattr(units, "load_model", lambda *args, **kwargs: pytest.fail("loaded a model"))

    result = CliRunner().invoke(main, [*arguments, "--report-only"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["runs"], summary["ran"], summary["skipped"]) == (GRID_SIZE, 0, 3)
    assert f"{GRID_SIZE - 3} not run" in result.stdout
    assert len(read_rows(tmp_path / "out")) == 3
    summary_rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()[1:]
    assert sum(int(line.split(",")[6]) for line in summary_rows) == 3  # the runs column covers exactly those rows
    assert (tmp_path / "out" / "kshot_curve.png").stat().st_size > 0


def test_report_only_with_no_finished_run_is_one_message(tmp_path, tiny_gpt2_dir):
    write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                         "eval_suites/toy-curve.yaml": SUITE.format(model=tiny_gpt2_dir)})
    result = CliRunner().invoke(main, ["eval", "toy-curve", "--catalog", str(tmp_path / "catalog"),
                                       "--output", str(tmp_path / "out"), "--report-only"])
    assert result.exit_code == 2, result.output
    assert "no finished runs of suite 'toy-curve'" in result.output and "run `promptlab eval toy-curve" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "report.md").exists()


def test_finished_runs_made_with_other_weights_run_again(tmp_path, build_tiny_model):
    folder = build_tiny_model("gpt2", tmp_path / "model")
    write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES, "eval_suites/toy-zero.yaml": ZERO_SUITE.format(model=folder)})
    suite = load_suite("toy-zero", Catalog.from_options([tmp_path / "catalog"]))
    first = run_suite(suite, tmp_path / "out", device="cpu")
    assert first.ran == first.runs == 2
    assert run_suite(suite, tmp_path / "out", device="cpu").ran == 0  # same weights: nothing to do
    build_tiny_model("gpt2", folder, seed=1)  # the same name now loads other weights
    log = io.StringIO()
    again = run_suite(suite, tmp_path / "out", device="cpu", log=log)
    assert again.ran == 2 and "2 finished run(s)" in log.getvalue()
    fingerprints = {row["model_fingerprint"] for row in again.rows}
    assert fingerprints == {load_model(str(folder), device="cpu").fingerprint}
    assert run_suite(suite, tmp_path / "out", device="cpu").ran == 0


def test_a_folder_made_in_another_precision_runs_again_and_says_which(suite, tmp_path):
    first = run_suite(suite, tmp_path / "out", device="cpu", dtype="float32")
    again = run_suite(suite, tmp_path / "out", device="cpu", dtype="bfloat16")
    assert (first.ran, again.ran, again.skipped) == (GRID_SIZE, GRID_SIZE, 0)
    assert {row["dtype"] for row in again.rows} == {"bfloat16"}
    assert sorted(row["dtype"] for row in read_rows(tmp_path / "out")) == ["bfloat16"] * GRID_SIZE + ["float32"] * GRID_SIZE
    assert run_suite(suite, tmp_path / "out", device="cpu", dtype="float32").ran == 0
