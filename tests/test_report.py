import csv
import io

import pytest

from promptlab.evaluation.report import (
    CURVE_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    curve_cells,
    summary_csv,
    write_reports,
)

METRICS = ("accuracy", "macro_f1")


def row(task="sentiment", template="t1", label="majority", k=4, seed=1, accuracy=0.5, model="m", n_labels=2):
    return {"task": task, "model": model, "template": template, "verbalizer": "default", "label": label, "k": k,
            "seed": seed, "metrics": {"accuracy": accuracy, "macro_f1": accuracy / 2}, "seconds": 2.0,
            "n_labels": n_labels, "model_kind": "causal", "model_fingerprint": "abc", "versions": {"torch": "2"}}


ROWS = [
    row(label="zeroshot (contextual)", k=0, seed=None, accuracy=0.7),
    row(label="zeroshot (contextual)", k=0, seed=None, accuracy=0.6, template="t2"),
    row(k=4, seed=1, accuracy=0.5), row(k=4, seed=2, accuracy=0.7),
    row(k=16, seed=1, accuracy=0.8), row(k=16, seed=2, accuracy=0.9),
    row(task="bbc", label="zeroshot (contextual)", k=0, seed=None, accuracy=0.4, n_labels=5),
    row(task="bbc", k=4, seed=1, accuracy=0.3, n_labels=5), row(task="bbc", k=4, seed=2, accuracy=0.2, n_labels=5),
]


def test_summary_has_mean_and_sample_std_per_cell():
    lines = list(csv.DictReader(io.StringIO(summary_csv(ROWS, METRICS))))
    assert [(line["task"], line["template"], line["method"], line["k"]) for line in lines] == [
        ("sentiment", "t1", "zeroshot (contextual)", "0"), ("sentiment", "t1", "majority", "4"),
        ("sentiment", "t1", "majority", "16"), ("sentiment", "t2", "zeroshot (contextual)", "0"),
        ("bbc", "t1", "zeroshot (contextual)", "0"), ("bbc", "t1", "majority", "4")]
    k4 = lines[1]
    assert (k4["runs"], k4["accuracy_mean"], k4["accuracy_std"], k4["macro_f1_mean"]) == ("2", "0.6000", "0.1414", "0.3000")
    assert lines[0]["accuracy_std"] == "0.0000" and lines[0]["runs"] == "1"


def test_curve_averages_over_templates():
    (zero_shot,) = [cell for cell in curve_cells(ROWS, METRICS) if cell.group == ("sentiment", "m", "zeroshot (contextual)", 0)]
    assert zero_shot.runs == 2 and zero_shot.mean["accuracy"] == pytest.approx(0.65)


def test_reports_are_written(tmp_path):
    paths = write_reports(ROWS, tmp_path, suite="toy", description="A toy.", metrics=METRICS, ran=3, seconds=12.0)
    assert [path.name for path in paths] == [SUMMARY_FILE, CURVE_FILE, REPORT_FILE]
    png = (tmp_path / CURVE_FILE).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    report = (tmp_path / REPORT_FILE).read_text()
    assert f"]({CURVE_FILE})" in report and "A toy." in report
    assert "| majority | – | 0.600 ± 0.141 (2) | 0.850 ± 0.071 (2) |" in report
    assert "## bbc · m" in report
    assert not list(tmp_path.glob(".*.tmp"))


def test_several_models_get_a_line_each(tmp_path):
    rows = ROWS + [row(k=4, seed=1, accuracy=0.55, model="other")]
    write_reports(rows, tmp_path, suite="toy", description="", metrics=("accuracy",), ran=0, seconds=1.0)
    assert "## sentiment · other" in (tmp_path / REPORT_FILE).read_text()
