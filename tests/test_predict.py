"""`promptlab predict` through the real CLI: input forms, output rows in order, errors, resume."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from serving import REPOSITORY

from cli_run import invoke


@pytest.fixture(scope="module")
def catalog(toy_catalog_dir):
    return toy_catalog_dir


@pytest.fixture(scope="module")
def model(sensitive_gpt2_dir):
    return sensitive_gpt2_dir


@pytest.fixture(scope="module")
def trained(catalog, model, tmp_path_factory):
    """A softprompt artefact and the fewshot predictions of its seed on the toy test split."""
    out = tmp_path_factory.mktemp("fewshot")
    invoke("fewshot", "--catalog", catalog, "--task", "toy", "--template", "t1", "--k", 4, "--seeds", 13,
           "--model", model, "--steps", 3, "--lr", 0.3, "--prompt-length", 4, "--output", out)
    rows = [json.loads(line) for line in (out / "seed-13" / "predictions.jsonl").read_text().splitlines()]
    return out / "seed-13", rows


@pytest.fixture
def unlabelled(catalog, tmp_path):
    """The toy test split without labels, with an extra field that must come back untouched."""
    rows = [json.loads(line) for line in (catalog / "tasks/data/test.jsonl").read_text().splitlines()]
    path = tmp_path / "new.jsonl"
    path.write_text("".join(json.dumps({"text": row["text"], "ref": row["id"]}) + "\n" for row in rows))
    return path, rows


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_trained_artefact_predicts_what_fewshot_predicted_in_input_order(trained, catalog, unlabelled, tmp_path):
    folder, fewshot_rows = trained
    path, gold = unlabelled
    # task, template, verbalizer and model all come from the artefact
    invoke("predict", "--trained", folder, "--catalog", catalog, "--input", path, "--output",
           tmp_path / "out.jsonl", "--top-k", 1)
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [row["ref"] for row in rows] == [row["id"] for row in gold]  # every row, in input order
    assert list(rows[0]) == ["text", "ref", "label", "probabilities", "top"]
    assert [row["label"] for row in rows] == [row["predicted"] for row in fewshot_rows]
    assert all(sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-5) for row in rows)
    assert all(row["top"][0]["label"] == row["label"] and len(row["top"]) == 1 for row in rows)


def test_zero_shot_from_stdin_plain_text_to_stdout(catalog, model):
    result = invoke("predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--input", "-",
                    "--output", "-", stdin="great fun\n\nterrible and boring\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["great fun", "terrible and boring"]
    assert all(row["label"] in ("negative", "positive") for row in rows)


def test_csv_in_csv_out_with_a_probability_column_per_label(catalog, model, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('text,note\n"good, really",a\nawful,b\n')
    invoke("predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--input", source,
           "--output", tmp_path / "out.csv", "--top-k", 2)
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert list(rows[0]) == ["text", "note", "label", "p_negative", "p_positive", "top"]
    assert [row["text"] for row in rows] == ["good, really", "awful"]
    assert float(rows[0]["p_negative"]) + float(rows[0]["p_positive"]) == pytest.approx(1, abs=1e-5)
    assert [entry["label"] for entry in json.loads(rows[0]["top"])][0] == rows[0]["label"]


def test_a_missing_field_names_the_row_and_the_field_and_writes_nothing(catalog, model, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "good"}\n{"body": "bad"}\n')
    result = invoke("predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--input", source,
                    "--output", tmp_path / "out.jsonl", exit_code=2)
    assert f"{source}:2: row 2 has no field 'text'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.jsonl").exists()


def test_resume_cuts_a_torn_line_and_continues_to_the_same_file(catalog, model, unlabelled, tmp_path):
    path, _ = unlabelled
    arguments = ["predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--input", path,
                 "--batch-size", 2]
    invoke(*arguments, "--output", tmp_path / "full.jsonl")
    full = (tmp_path / "full.jsonl").read_text()
    lines = full.splitlines(keepends=True)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(lines[:4]) + lines[4][:20])  # interrupted in the middle of row 5
    (tmp_path / "partial.jsonl.weights.json").write_text((tmp_path / "full.jsonl.weights.json").read_text())
    refused = invoke(*arguments, "--output", partial, exit_code=2)
    assert "the output file exists" in refused.output and "--resume" in refused.output
    invoke(*arguments, "--output", partial, "--resume")
    assert partial.read_text() == full


def test_resume_refuses_the_output_of_another_input(catalog, model, unlabelled, tmp_path):
    path, _ = unlabelled
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "fun", "ref": "x"}\n')
    invoke("predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--input", other,
           "--output", tmp_path / "out.jsonl")
    result = invoke("predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--input", path,
                    "--output", tmp_path / "out.jsonl", "--resume", exit_code=2)
    assert "is not this input's output" in result.output


def test_batch_calibration_of_a_file_divides_out_the_mean_of_the_whole_file_however_it_is_cut(catalog, model,
                                                                                              tmp_path):
    words = ["great", "terrible", "fun", "awful", "good", "great fun", "boring"] * 6  # 42 rows: chunks of 16
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": word}) + "\n" for word in words))
    common = ["predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model,
              "--input", source, "--batch-size", 2]
    invoke(*common, "--calibrate", "none", "--output", tmp_path / "none.jsonl")
    invoke(*common, "--calibrate", "batch", "--output", tmp_path / "batch.jsonl")
    raw = [[row["probabilities"][label] for label in ("negative", "positive")] for row in read_jsonl(tmp_path / "none.jsonl")]
    prior = [sum(row[0] for row in raw) / len(raw), sum(row[1] for row in raw) / len(raw)]  # by hand: the file's mean
    for row, got in zip(raw, read_jsonl(tmp_path / "batch.jsonl")):
        divided = [row[0] / prior[0], row[1] / prior[1]]
        assert got["probabilities"]["positive"] == pytest.approx(divided[1] / sum(divided), abs=2e-5)
        assert got["label"] == ("positive" if divided[1] > divided[0] else "negative")
    full = (tmp_path / "batch.jsonl").read_text()
    invoke(*common[:-1], 5, "--calibrate", "batch", "--output", tmp_path / "cut.jsonl")  # other chunks: 40 rows
    assert [row["label"] for row in read_jsonl(tmp_path / "cut.jsonl")] == [row["label"] for row in read_jsonl(
        tmp_path / "batch.jsonl")]
    lines = full.splitlines(keepends=True)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("".join(lines[:21]) + lines[21][:15])  # killed half-way, in the middle of a row
    (tmp_path / "partial.jsonl.weights.json").write_text((tmp_path / "batch.jsonl.weights.json").read_text())
    invoke(*common, "--calibrate", "batch", "--output", partial, "--resume")
    assert partial.read_text() == full


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_batch_calibration_equals_zeroshot_on_the_same_rows(catalog, model, unlabelled, tmp_path, dtype):
    # bfloat16: a row's score depends on the rows padded into its batch, so predict must score the file in
    # zeroshot's batches (not chunk by chunk) for the labels to be zeroshot's
    path, rows = unlabelled
    common = ["--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--calibrate", "batch",
              "--batch-size", 2, "--dtype", dtype]
    invoke("zeroshot", *common, "--output", tmp_path / "zeroshot")
    zeroshot = {row["id"]: row for row in read_jsonl(tmp_path / "zeroshot" / "predictions.jsonl")}
    invoke("predict", *common, "--input", path, "--output", tmp_path / "predicted.jsonl")
    predicted = read_jsonl(tmp_path / "predicted.jsonl")
    assert len(predicted) == len(zeroshot) == len(rows)
    assert [row["label"] for row in predicted] == [zeroshot[row["ref"]]["predicted"] for row in predicted]
    for row in predicted:
        assert row["probabilities"] == pytest.approx(zeroshot[row["ref"]]["probabilities"], abs=2e-5)


def test_batch_calibration_of_standard_input_divides_out_the_running_mean(catalog, model, tmp_path):
    words = ["great", "terrible", "fun", "awful", "good"] * 8  # 40 rows: chunks of 16, 16 and 8 at batch size 2
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": word}) + "\n" for word in words))
    common = ["predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--batch-size", 2]
    invoke(*common, "--input", source, "--calibrate", "none", "--output", tmp_path / "none.jsonl")
    calibrated_output = invoke(*common, "--input", "-", "--calibrate", "batch", "--output", "-",
                               stdin=source.read_text()).stdout
    raw = [[row["probabilities"][label] for label in ("negative", "positive")] for row in read_jsonl(tmp_path / "none.jsonl")]
    calibrated = [json.loads(line)["probabilities"] for line in calibrated_output.splitlines() if line.startswith("{")]
    assert len(calibrated) == 40
    seen, total = 0, [0.0, 0.0]
    for start, end in ((0, 16), (16, 32), (32, 40)):  # a reference running prior: the mean of every row so far
        for row in raw[start:end]:
            total = [total[0] + row[0], total[1] + row[1]]
        seen = end
        prior = [total[0] / seen, total[1] / seen]
        for row, got in zip(raw[start:end], calibrated[start:end]):
            divided = [row[0] / prior[0], row[1] / prior[1]]
            assert got["positive"] == pytest.approx(divided[1] / sum(divided), abs=2e-5)


def test_resume_refuses_a_file_written_with_another_precision_or_other_weights(catalog, model, tiny_gpt2_dir,
                                                                                unlabelled, tmp_path):
    path, _ = unlabelled
    arguments = ["predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--input", path,
                 "--batch-size", 2]
    output = tmp_path / "out.jsonl"
    invoke(*arguments, "--model", model, "--dtype", "float32", "--output", output)
    recorded = json.loads((tmp_path / "out.jsonl.weights.json").read_text())
    assert recorded["dtype"] == "float32" and len(recorded["model_fingerprint"]) > 8
    lines = output.read_text().splitlines(keepends=True)
    output.write_text("".join(lines[:3]))
    other_dtype = invoke(*arguments, "--model", model, "--dtype", "bfloat16", "--output", output, "--resume",
                         exit_code=2)
    assert "dtype float32 then, bfloat16 now" in other_dtype.output
    other_weights = invoke(*arguments, "--model", tiny_gpt2_dir, "--dtype", "float32", "--output", output,
                           "--resume", exit_code=2)
    assert "model_fingerprint" in other_weights.output
    assert output.read_text() == "".join(lines[:3])  # nothing mixed in
    invoke(*arguments, "--model", model, "--dtype", "float32", "--output", output, "--resume")
    assert output.read_text() == "".join(lines)


def test_a_predict_killed_half_way_and_resumed_writes_the_bytes_of_an_uninterrupted_run(catalog, model, tmp_path):
    """A real process killed with SIGKILL in the middle of the file. Contextual calibration: with batch
    calibration the second pass answers from the first pass's scores, too fast to be caught half-way (its resume
    is checked on a torn file above)."""
    words = ["great", "terrible", "fun", "awful", "good", "great fun", "boring", "not good"]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": f"{words[i % 8]} {words[i * 5 % 7]}", "n": i}) + "\n"
                              for i in range(400)))
    arguments = ["predict", "--catalog", catalog, "--task", "toy", "--template", "t1", "--model", model, "--input",
                 source, "--calibrate", "contextual", "--batch-size", 2, "--dtype", "float32"]
    invoke(*arguments, "--output", tmp_path / "full.jsonl")
    output = tmp_path / "killed.jsonl"
    command = [sys.executable, "-m", "promptlab", *map(str, arguments), "--output", str(output)]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    while process.poll() is None and (not output.exists() or output.read_bytes().count(b"\n") < 200):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # killed before it finished
    assert 200 <= output.read_bytes().count(b"\n") < 400
    invoke(*arguments, "--output", output, "--resume")
    assert output.read_bytes() == (tmp_path / "full.jsonl").read_bytes()
