"""`promptlab predict` on an entity task behaves as on a text task: rows written as they go, an existing output
refused, `--resume` after an interruption, CSV with the spans as JSON in a column."""
from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner
from entity_files import catalog, one_thread, tagger_artefact  # noqa: F401 (fixtures)

import promptlab.commands.prediction as prediction_command
from promptlab.apply.rows import input_rows
from promptlab.cli import main

TEXTS = ["i love World and Tech News", "Story was about Business, not Science.", "no names here",
         "Acting in the World of Tech", "the movie was fun"]
ROWS = 70  # more than two chunks of 32 rows


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rows") / "rows.jsonl"
    path.write_text("".join(json.dumps({"ref": index, "text": TEXTS[index % len(TEXTS)]}) + "\n"
                            for index in range(ROWS)))
    return path


def predict(trained, catalog, rows_file, output, *extra, exit_code=0):
    result = CliRunner().invoke(main, ["predict", "--trained", str(trained), "--catalog", str(catalog), "--input",
                                       str(rows_file), "--output", str(output), *extra])
    assert result.exit_code == exit_code, result.output
    return result


@pytest.fixture(scope="module")
def uninterrupted(tagger_artefact, catalog, rows_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole")
    for suffix in ("jsonl", "csv"):
        predict(tagger_artefact, catalog, rows_file, folder / f"out.{suffix}")
    return folder


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_an_interrupted_run_resumed_gives_the_uninterrupted_file(tagger_artefact, catalog, rows_file, uninterrupted,
                                                                 suffix, tmp_path, monkeypatch):
    def interrupted_after(count):
        def rows(source):
            for row in input_rows(source):
                if row.position == count:
                    raise KeyboardInterrupt  # as a Ctrl-C (or a kill) half-way through the input
                yield row
        return rows

    output = tmp_path / f"out.{suffix}"
    with monkeypatch.context() as patch:
        patch.setattr(prediction_command, "input_rows", interrupted_after(45))
        predict(tagger_artefact, catalog, rows_file, output, exit_code=1)
    whole = (uninterrupted / f"out.{suffix}").read_bytes()
    partial = output.read_bytes()
    assert 0 < len(partial) < len(whole) and whole.startswith(partial)  # whole chunks, written as they went
    with output.open("ab") as handle:
        handle.write(whole[len(partial):len(partial) + 17])  # a write torn by the kill
    result = predict(tagger_artefact, catalog, rows_file, output, "--resume")
    assert output.read_bytes() == whole
    assert "after the 32 already there" in result.output


def test_an_existing_output_is_refused_and_left_as_it_is(tagger_artefact, catalog, rows_file, tmp_path):
    output = tmp_path / "out.jsonl"
    output.write_text('{"mine": 1}\n')
    result = predict(tagger_artefact, catalog, rows_file, output, exit_code=2)
    assert "the output file exists" in result.output and "--resume" in result.output
    assert "Traceback" not in result.output and output.read_text() == '{"mine": 1}\n'


def test_csv_holds_the_input_columns_and_the_spans_as_json(uninterrupted):
    jsonl = [json.loads(line) for line in (uninterrupted / "out.jsonl").read_text().splitlines()]
    with (uninterrupted / "out.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["ref", "text", "entities"] and len(table) == len(jsonl) == ROWS
    assert any(row["entities"] for row in jsonl)  # the tiny model finds entities: the comparison compares some
    for row, expected in zip(table, jsonl):
        assert (int(row["ref"]), row["text"]) == (expected["ref"], expected["text"])
        assert json.loads(row["entities"]) == expected["entities"]


def test_a_row_whose_text_is_not_a_string_names_its_line(tagger_artefact, catalog, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "World"}\n{"text": 7}\n')
    result = predict(tagger_artefact, catalog, rows, tmp_path / "out.jsonl", exit_code=2)
    assert f"{rows}:2: row 2: field 'text' is int, not a string" in result.output


def test_batch_calibration_is_refused_on_an_entity_task_before_any_model_loads(catalog, rows_file, tmp_path):
    result = CliRunner().invoke(main, ["predict", "--task", "tweetner", "--catalog", str(catalog), "--calibrate",
                                       "batch", "--model", str(tmp_path / "never-loaded"), "--input", str(rows_file),
                                       "--output", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 2 and "batch calibration does not apply to predict or serve" in result.output
    assert not (tmp_path / "out.jsonl").exists()
