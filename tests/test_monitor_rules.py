"""monitor's parts without a model: the rule language, alerts over labelled rows, windows, the stream reader,
timestamps, the example stream, and the command's mistakes reported before any model loads."""
from __future__ import annotations

import io
import json
import math
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from promptlab.apply.alerts import Threshold, evaluate, parse_rule
from promptlab.apply.monitor_example import example_stream
from promptlab.apply.stream import RowError, StreamReader, parse_time
from promptlab.apply.windows import Labelled, WindowCounts, parse_window
from promptlab.cli import main
from promptlab.errors import UserError

LABELS = {"topic": ["crude", "earn"], "sentiment": ["negative", "neutral", "positive"], "orgs": None}
DAY = parse_window("1d")
START = datetime(2026, 1, 5, tzinfo=timezone.utc)  # a Monday


# ---------------------------------------------------------------- the rule language

def test_a_rule_reads_every_term():
    rule = parse_rule("sentiment=negative  by=topic,orgs share>=0.4 z>3 min=20 baseline=5", LABELS)
    assert (rule.classifier, rule.label, rule.by, rule.min_count, rule.baseline) == (
        "sentiment", "negative", ("topic", "orgs"), 20, 5)
    assert rule.share == Threshold(0.4, True) and rule.z == Threshold(3.0, False)
    assert rule.text == "sentiment=negative by=topic,orgs share>=0.4 z>3 min=20 baseline=5"
    assert parse_rule("orgs=opec", LABELS).label == "opec"  # an entity classifier's values are open


@pytest.mark.parametrize("text, message", [
    ("by=topic share>0.4", "it names no label to watch"),
    ("sentiment=angry", "classifier 'sentiment' has no label 'angry'"),
    ("mood=negative", "no classifier is named 'mood'"),
    ("sentiment=negative by=topc", "no classifier is named 'topc'"),
    ("sentiment=negative topic=crude", "it watches two labels"),
    ("sentiment=negative share>1.5", "a share is between 0 and 1"),
    ("sentiment=negative z>high", "'high' in 'z>high' is not a number"),
    ("sentiment=negative min=0", "min= takes a positive whole number"),
    ("sentiment=negative z>2 z>3", "'z' is given twice"),
    ("sentiment=negative share<0.2", "'share<0.2' is not a term"),
    ("sentiment=negative by=sentiment", "it groups by 'sentiment', the classifier it watches"),
])
def test_rule_mistakes_are_user_errors(text, message):
    with pytest.raises(UserError, match="--alert") as error:
        parse_rule(text, LABELS)
    assert message in error.value.message and "fix:" in error.value.message


# ---------------------------------------------------------------- alerts over labelled rows

def documents(day: int, topic: str, negative: int, other: int, prefix: str = "") -> list[Labelled]:
    moment = START + timedelta(days=day, hours=12)
    rows = []
    for number in range(negative + other):
        sentiment = "negative" if number < negative else "positive"
        rows.append(Labelled(f"{prefix}{topic}-{day}-{number}", moment, {"topic": (topic,), "sentiment": (sentiment,)},
                             {"sentiment": {"negative": 0.5 + number / 1000 if sentiment == "negative" else 0.1}}))
    return rows


def test_an_alert_needs_every_condition_and_carries_its_numbers():
    stream = []
    for day in range(8):  # a week at 2 negative in 20, then 12 in 20
        stream += documents(day, "crude", 2, 18) + documents(day, "earn", 2, 18)
    stream += documents(8, "crude", 12, 8) + documents(8, "earn", 2, 18)
    rule = parse_rule("sentiment=negative by=topic share>0.4 z>3 min=10", LABELS)
    (alert,) = evaluate(rule, stream, DAY)
    assert alert["window_start"] == "2026-01-13T00:00:00Z" and alert["group"] == {"topic": "crude"}
    assert (alert["count"], alert["share"], alert["baseline"]) == (12, 0.6, 0.1)
    # the binomial z around the baseline, with the baseline smoothed by one document each way (14 in 140 -> 15/142)
    smoothed = 15 / 142
    assert alert["z"] == round((0.6 - 0.1) / math.sqrt(smoothed * (1 - smoothed) / 20), 6)
    assert alert["documents"][0] == "crude-8-11" and len(alert["documents"]) == 12  # most confident first
    assert evaluate(parse_rule("sentiment=negative by=topic share>0.4 z>3 min=13", LABELS), stream, DAY) == []
    assert evaluate(parse_rule("sentiment=negative by=topic share>0.6 z>3", LABELS), stream, DAY) == []
    assert evaluate(parse_rule("sentiment=negative by=topic share>=0.6 z>3", LABELS), stream, DAY) == [alert | {
        "rule": "sentiment=negative by=topic share>=0.6 z>3"}]


def test_z_needs_history_and_the_whole_stream_is_one_group_without_by():
    stream = documents(0, "crude", 15, 5) + documents(1, "earn", 1, 19)
    assert evaluate(parse_rule("sentiment=negative z>0", LABELS), stream, DAY) == []  # day 1 is below day 0
    (alert,) = evaluate(parse_rule("sentiment=negative share>0.5", LABELS), stream, DAY)
    assert alert["group"] == {} and alert["baseline"] is None and alert["z"] is None and alert["count"] == 15


def test_only_closed_windows_are_judged_while_the_stream_runs():
    stream = documents(0, "crude", 15, 5) + documents(1, "crude", 15, 5)
    rule = parse_rule("sentiment=negative share>0.5", LABELS)
    assert [alert["window_start"] for alert in evaluate(rule, stream, DAY, closed_before=START + timedelta(days=1))
            ] == ["2026-01-05T00:00:00Z"]
    assert len(evaluate(rule, stream, DAY)) == 2


def test_the_baseline_counts_empty_windows_in_its_span():
    stream = documents(0, "crude", 1, 9) + documents(5, "crude", 9, 1)
    (alert,) = evaluate(parse_rule("sentiment=negative share>0.5 baseline=5", LABELS), stream, DAY)
    assert alert["baseline"] == 0.1
    (alert,) = evaluate(parse_rule("sentiment=negative share>0.5 baseline=4", LABELS), stream, DAY)
    assert alert["baseline"] is None  # days 1-4 are empty: no history


# ---------------------------------------------------------------- windows

@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("6h", 21600), ("1d", 86400), (" 2w ", 1209600)])
def test_window_lengths(text, seconds):
    assert parse_window(text).seconds == seconds


@pytest.mark.parametrize("text", ["0d", "1y", "day", "", "1.5h"])
def test_bad_window_lengths_are_user_errors(text):
    with pytest.raises(UserError, match="is not a window length"):
        parse_window(text)


def test_windows_align_to_utc_days_and_monday_weeks():
    sunday_night = datetime(2026, 1, 11, 23, 59, tzinfo=timezone.utc)
    assert DAY.start_of(sunday_night) == datetime(2026, 1, 11, tzinfo=timezone.utc)
    assert parse_window("1w").start_of(sunday_night) == START
    assert parse_window("6h").start_of(sunday_night) == datetime(2026, 1, 11, 18, tzinfo=timezone.utc)


def test_window_counts_by_group_and_entities():
    counts = WindowCounts(DAY, ["topic", "orgs"], {"topic": ["crude", "earn"]})
    moment = START + timedelta(hours=3)
    counts.add(Labelled("a", moment, {"topic": ("crude",), "orgs": ("opec", "exxon")}, {}))
    counts.add(Labelled("b", moment, {"topic": ("crude",), "orgs": ("opec",)}, {}))
    counts.add(Labelled("c", moment, {"topic": ("earn",), "orgs": ()}, {}))
    table = {(row["classifier"], row["label"], row["group"]): (row["count"], row["share"]) for row in counts.rows()}
    assert table[("topic", "crude", "")] == (2, round(2 / 3, 6))
    assert table[("topic", "earn", "")] == (1, round(1 / 3, 6))
    assert table[("orgs", "opec", "")] == (2, round(2 / 3, 6)) and table[("orgs", "exxon", "topic=crude")] == (1, 0.5)
    assert table[("topic", "earn", "orgs=opec")] == (0, 0.0) and ("orgs", "exxon", "topic=earn") not in table
    assert counts.documents == 3


# ---------------------------------------------------------------- timestamps and the reader

@pytest.mark.parametrize("value, expected", [
    ("2026-01-05T09:30:00Z", datetime(2026, 1, 5, 9, 30)),
    ("2026-01-05 10:30:00+01:00", datetime(2026, 1, 5, 9, 30)),
    ("2026-01-05", datetime(2026, 1, 5)),
    (1767605400, datetime(2026, 1, 5, 9, 30)),
    ("1767605400", datetime(2026, 1, 5, 9, 30)),
    (1767605400500, datetime(2026, 1, 5, 9, 30, 0, 500000)),
])
def test_timestamps_iso_or_epoch(value, expected):
    assert parse_time(value) == expected.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("value, kind", [(None, "no timestamp"), ("", "no timestamp"), ("yesterday", "bad timestamp"),
                                         (True, "bad timestamp"), ("2026-13-01", "bad timestamp")])
def test_bad_timestamps_are_row_errors(value, kind):
    with pytest.raises(RowError) as error:
        parse_time(value)
    assert error.value.kind == kind


def test_the_reader_takes_complete_lines_only_and_counts_bad_rows(tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text('{"id": 1, "t": "2026-01-05", "text": "a"}\n{"id": 2, "t": "soon", "text": "b"}\nnot json\n'
                    '{"id": 1, "t": "2026-01-06", "text": "again"}\n{"id": 3, "t": "2026-01-0')
    logged = []
    reader = StreamReader(str(path), "id", "t", required=frozenset({"text"}), log=logged.append)
    assert [document.id for document in reader.read(final=False)] == ["1"]
    assert dict(reader.errors) == {"bad timestamp": 1, "invalid JSON": 1} and reader.duplicates == 1
    assert logged[0] == f"monitor: {path}:2: skipped: timestamp 'soon' is neither ISO 8601 nor epoch seconds"
    with path.open("a") as handle:  # the torn line completes, another arrives without a field the classifiers read
        handle.write('7", "text": "c"}\n{"id": 4, "t": "2026-01-08"}\n')
    assert [document.id for document in reader.read(final=False)] == ["3"]
    assert reader.errors["missing field"] == 1 and f"{path}:6: skipped: no field 'text'" in logged[-1]


def test_the_reader_reads_a_folder_of_csv_and_jsonl_in_name_order(tmp_path):
    (tmp_path / "b.csv").write_text('id,t,text\nc1,2026-01-05,"a, quoted text"\nc2,2026-01-06\n')
    (tmp_path / "a.jsonl").write_text('{"id": "j1", "t": 1767605400, "text": "x"}\n')
    (tmp_path / ".c.jsonl.tmp").write_text('{"id": "hidden", "t": 1767605400, "text": "x"}\n')
    reader = StreamReader(str(tmp_path), "id", "t")
    read = list(reader.read())
    assert [document.id for document in read] == ["j1", "c1"] and read[1].fields["text"] == "a, quoted text"
    assert dict(reader.errors) == {"wrong number of cells": 1}
    (tmp_path / "c.jsonl").write_text('{"id": "j2", "t": 1767605400, "text": "y"}\n')
    assert [document.id for document in reader.read()] == ["j2"]


def test_standard_input_is_read_as_jsonl():
    stdin = io.StringIO('{"id": "s1", "t": "2026-01-05T00:00:00Z", "text": "x"}\n{"id": "s2", "t": 0, "text": "y"}\n')
    reader = StreamReader("-", "id", "t", stdin=stdin)
    assert [(document.id, document.time.year) for document in reader.read()] == [("s1", 2026), ("s2", 1970)]
    assert reader.ended


# ---------------------------------------------------------------- the example stream

def test_the_example_stream_spreads_stories_and_injects_one_burst():
    stories = [{"id": f"s{number}", "text": f"story {number} " + "word " * 80, "label": ["crude", "earn"][number % 2]}
               for number in range(200)]
    rows = example_stream(stories, days=30, start="2026-01-01", words=10, burst_topic="crude", burst_day=21,
                          burst_size=40, seed=13)
    assert len(rows) == 240 and [row["date"] for row in rows] == sorted(row["date"] for row in rows)
    burst = [row for row in rows if row["topic_gold"] == "burst"]
    assert len(burst) == 40 and {row["date"][:10] for row in burst} == {"2026-01-21"}
    assert all(len(row["text"].split()) == 10 for row in rows)
    days = {row["date"][:10] for row in rows if row["topic_gold"] != "burst"}
    assert min(days) == "2026-01-01" and max(days) == "2026-01-30" and len(days) >= 28
    assert rows == example_stream(stories, days=30, start="2026-01-01", words=10, burst_topic="crude",
                                  burst_day=21, burst_size=40, seed=13)
    with pytest.raises(UserError, match="no story has topic 'ship'"):
        example_stream(stories, days=30, start="2026-01-01", words=10, burst_topic="ship", burst_day=2,
                       burst_size=1, seed=13)


# ---------------------------------------------------------------- the command's mistakes

@pytest.mark.parametrize("args, message", [
    (["--classifier", "sentiment"], "--classifier 'sentiment' is not NAME=SPEC"),
    (["--classifier", "a=sentiment", "--classifier", "a=sentiment"], "two classifiers are named 'a'"),
    (["--classifier", "a=no-such-task"], "unknown task 'no-such-task'"),
    (["--classifier", "a=runs/missing/seed-13"], "no such folder"),
    (["--classifier", "a=sentiment", "--alert", "a=neutral"], "classifier 'a' has no label 'neutral'"),
    (["--classifier", "a=sentiment", "--window", "1y"], "--window '1y' is not a window length"),
])
def test_command_mistakes_exit_2_before_a_model_loads(tmp_path, args, message):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "time": 0, "text": "x"}\n')
    result = CliRunner().invoke(main, ["monitor", *args, "--input", str(source), "--time-field", "time",
                                       "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_an_output_folder_of_other_classifiers_is_refused(tmp_path):
    source, output = tmp_path / "in.jsonl", tmp_path / "out"
    source.write_text('{"id": 1, "time": 0, "text": "x"}\n')
    output.mkdir()
    (output / "labelled.jsonl").write_text(json.dumps({"id": "1", "time": "1970-01-01T00:00:00Z", "document": {},
                                                       "labels": {"topic": "earn"}, "probabilities": {}}) + "\n")
    result = CliRunner().invoke(main, ["monitor", "--classifier", "tone=sentiment", "--input", str(source),
                                       "--time-field", "time", "--output", str(output)])
    assert result.exit_code == 2 and "written by classifiers topic, not tone" in result.output
