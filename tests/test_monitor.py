"""`promptlab monitor` end to end on a toy news stream, with `head` artefacts trained on a tiny model's features:
the burst raises its alert and nothing before it, counts add up, a killed run resumes to the same files,
--follow picks up new files and stops cleanly on SIGTERM, and report.html renders in headless Chromium."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import monitor_stream as toy
from catalog_files import write_catalog
from entity_files import TWEET_FILES, one_thread  # noqa: F401  (one_thread: autouse, tiny models on one thread)
from cli_run import invoke

RULE = "tone=negative by=topic share>0.4 z>3 min=20"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("monitor-catalog"), toy.catalog_files())


@pytest.fixture(scope="module")
def classifiers(catalog, tiny_gpt2_dir, tmp_path_factory):
    """--classifier options: topic and tone heads trained on the toy tasks (each scores 1.0 on its test split)."""
    folder = tmp_path_factory.mktemp("monitor-heads")
    options = []
    for name, task in (("topic", "news-topic"), ("tone", "news-tone")):
        invoke("fewshot", "--catalog", catalog, "--task", task, "--method", "head", "--k", 12, "--seeds", 13,
               "--model", tiny_gpt2_dir, "--output", folder / task)
        assert json.loads((folder / task / "seed-13" / "trained.json").read_text())["test"]["accuracy"] == 1.0
        options += ["--classifier", f"{name}={folder / task / 'seed-13'}"]
    return options


@pytest.fixture(scope="module")
def stream_file(tmp_path_factory):
    rows = toy.stream()
    path = tmp_path_factory.mktemp("monitor-stream") / "stream.jsonl"
    toy.write_stream(path, rows[:1500] + toy.BAD_ROWS + rows[1500:])
    return path


def monitor_args(catalog, classifiers, source, output, *extra):
    return ["monitor", "--catalog", catalog, *classifiers, "--input", source, "--time-field", "time",
            "--alert", RULE, "--dtype", "float32", "--batch-size", 8, "--output", output, *extra]


@pytest.fixture(scope="module")
def finished(catalog, classifiers, stream_file, tmp_path_factory):
    """One uninterrupted run over the whole stream: (output folder, the command's stderr)."""
    output = tmp_path_factory.mktemp("monitor-run") / "out"
    result = invoke(*monitor_args(catalog, classifiers, stream_file, output))
    return output, result.output


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_burst_raises_one_alert_for_its_topic_and_day(finished):
    output, _ = finished
    (alert,) = read_jsonl(output / "alerts.jsonl")
    assert list(alert) == ["window_start", "window_end", "rule", "label", "group", "count", "share", "baseline", "z",
                           "documents"]
    assert (alert["window_start"], alert["window_end"]) == ("2026-03-20T00:00:00Z", "2026-03-21T00:00:00Z")
    assert alert["rule"] == RULE and alert["label"] == "tone=negative" and alert["group"] == {"topic": "tech"}
    # the alert's numbers, recounted from labelled.jsonl
    labelled = read_jsonl(output / "labelled.jsonl")

    def day_of(row):
        return row["time"][:10]

    tech = [row for row in labelled if row["labels"]["topic"] == "tech"]
    today = [row for row in tech if day_of(row) == "2026-03-20"]
    negative = [row for row in today if row["labels"]["tone"] == "negative"]
    before = [row for row in tech if "2026-03-13" <= day_of(row) < "2026-03-20"]
    assert alert["count"] == len(negative) >= toy.BURST_SIZE
    assert alert["share"] == round(len(negative) / len(today), 6)
    assert alert["baseline"] == round(sum(row["labels"]["tone"] == "negative" for row in before) / len(before), 6)
    assert sorted(alert["documents"]) == sorted(row["id"] for row in negative)
    assert alert["documents"][0].startswith("burst-")


def test_labelled_holds_every_valid_document_once_with_both_labels(finished, stream_file):
    output, stderr = finished
    labelled = read_jsonl(output / "labelled.jsonl")
    expected = toy.stream()
    assert [row["id"] for row in labelled] == [row["id"] for row in expected]
    first = labelled[0]
    assert set(first) == {"id", "time", "document", "labels", "probabilities"}
    assert set(first["labels"]) == {"topic", "tone"} and set(first["probabilities"]["tone"]) == {"negative", "positive"}
    # the heads read the toy stream: topic is the text's first word, tone its last three
    assert all(row["labels"]["topic"] == row["document"]["text"].split()[0] for row in labelled)
    tone_right = [(row["labels"]["tone"] == "negative") == row["document"]["text"].endswith(toy.NEGATIVE)
                  for row in labelled]
    assert sum(tone_right) / len(tone_right) >= 0.95
    assert "rows skipped: 1 bad timestamp, 1 no id, 1 no timestamp" in stderr
    assert f"{stream_file}:1501: skipped: timestamp 'yesterday' is neither ISO 8601 nor epoch seconds" in stderr


def test_window_counts_add_up_to_the_documents_read(finished):
    output, _ = finished
    rows = list(csv.DictReader((output / "windows.csv").open()))
    assert list(rows[0]) == ["window_start", "window_end", "classifier", "label", "group", "count", "share"]
    overall = [row for row in rows if row["group"] == ""]
    for classifier in ("topic", "tone"):
        assert sum(int(row["count"]) for row in overall if row["classifier"] == classifier) == len(toy.stream())
    per_day = Counter(row["time"][:10] for row in read_jsonl(output / "labelled.jsonl"))
    tone_days = Counter()
    for row in overall:
        if row["classifier"] == "tone":
            tone_days[row["window_start"][:10]] += int(row["count"])
    assert tone_days == per_day and len(per_day) == toy.DAYS
    # within a topic's group the tone counts add up to that topic's documents, and shares to 1
    burst_day = [row for row in rows if row["window_start"].startswith("2026-03-20") and row["group"] == "topic=tech"]
    assert {row["label"] for row in burst_day} == {"negative", "positive"}
    assert sum(float(row["share"]) for row in burst_day) == pytest.approx(1.0, abs=1e-5)


def test_the_report_holds_the_charts_and_the_alert(finished):
    output, _ = finished
    page = (output / "report.html").read_text()
    assert page.count("<svg") == 2
    assert not re.findall(r'(?:src|href)="(?!#)', page) and "<link" not in page and "<script" not in page  # no assets
    assert "burst-" in page and "topic=tech" in page
    assert (output / "volume.png").read_bytes()[:4] == b"\x89PNG" and "![share](share.png)" in (
        output / "report.md").read_text()


def test_a_second_run_over_the_same_input_adds_nothing(finished, catalog, classifiers, stream_file, tmp_path):
    output, _ = finished
    copy = tmp_path / "out"
    shutil.copytree(output, copy)
    result = invoke(*monitor_args(catalog, classifiers, stream_file, copy))
    assert "monitor: 0 documents" in result.output
    for name in ("labelled.jsonl", "windows.csv", "alerts.jsonl"):
        assert (copy / name).read_bytes() == (output / name).read_bytes()


def _command(args) -> list[str]:
    return [sys.executable, "-m", "promptlab", *map(str, args)]


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the one_thread fixture does in-process


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_killed_run_restarted_ends_with_the_same_files(finished, catalog, classifiers, stream_file, tmp_path):
    output, _ = finished
    resumed = tmp_path / "out"
    process = subprocess.Popen(_command(monitor_args(catalog, classifiers, stream_file, resumed)), cwd=REPO,
                               env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _lines(resumed / "labelled.jsonl") >= 200 or process.poll() is not None, 300,
                  "the first chunks")
        process.kill()  # SIGKILL: no chance to tidy up
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    written = _lines(resumed / "labelled.jsonl")
    assert 0 < written < len(toy.stream()), "the run was not killed half-way"
    invoke(*monitor_args(catalog, classifiers, stream_file, resumed))
    for name in ("labelled.jsonl", "windows.csv", "alerts.jsonl"):
        assert (resumed / name).read_bytes() == (output / name).read_bytes(), name


def test_follow_picks_up_new_files_and_stops_cleanly_on_sigterm(catalog, classifiers, tmp_path):
    inbox, output = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    rows = toy.stream()[:300]
    parts = [rows[:100], rows[100:200], rows[200:]]

    def deliver(number: int) -> None:  # written beside, then renamed in: a file appears whole
        hidden = inbox / f".part-{number}.jsonl"
        toy.write_stream(hidden, parts[number])
        hidden.rename(inbox / f"part-{number}.jsonl")

    deliver(0)
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:  # a file, not a pipe: nothing blocks however much is printed
        process = subprocess.Popen(_command(monitor_args(catalog, classifiers, inbox, output, "--follow", "--poll",
                                                         0.2)), cwd=REPO, env=ONE_THREAD, stdout=subprocess.DEVNULL,
                                   stderr=stderr)
    try:
        _wait_for(lambda: _lines(output / "labelled.jsonl") == 100, 300, "the first file")
        deliver(1)
        _wait_for(lambda: _lines(output / "labelled.jsonl") == 200, 60, "the file added while running")
        deliver(2)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, log.read_text()
    labelled = read_jsonl(output / "labelled.jsonl")
    assert sorted(row["id"] for row in labelled) == sorted(row["id"] for row in rows)  # each once, none lost
    assert (output / "report.html").exists() and _lines(output / "windows.csv") > 1


CHROMIUM = next((path for path in ("/usr/bin/chromium", shutil.which("chromium") or "",
                                   shutil.which("chromium-browser") or "", shutil.which("google-chrome") or "")
                 if path and os.access(path, os.X_OK)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (/usr/bin/chromium, chromium, google-chrome): "
                                             "install it to check the report in a browser")
def test_report_html_renders_its_charts_in_headless_chromium(finished, tmp_path):
    output, _ = finished
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", (output / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert dom.count("<svg") == 2 and 'id="volume"' in dom and 'id="share"' in dom
    assert dom.count("<path") > 100  # bars, lines and markers drawn as paths
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,1600", (output / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image
    image = Image.open(shot).convert("RGB")
    colours = {colour: count for count, colour in image.getcolors(maxcolors=1 << 24)}
    # the charts' colours are on the page: matplotlib's first bar colour and the alert red

    def pixels_near(target) -> int:
        return sum(count for colour, count in colours.items() if sum(map(abs, map(int.__sub__, colour, target))) < 30)

    assert pixels_near((31, 119, 180)) > 2000 and pixels_near((214, 39, 40)) > 20


def test_an_entity_classifier_adds_the_entities_as_a_dimension(catalog, classifiers, tiny_gpt2_dir, tmp_path):
    tweets = write_catalog(tmp_path / "tweets", TWEET_FILES)
    source, output = tmp_path / "stream.jsonl", tmp_path / "out"
    rows = toy.stream()[:60]
    for row in rows:  # capitalised words the entity verbalizer's tiny model knows as single tokens
        row["text"] = row["text"].replace("tech", "Tech News").replace("business", "Business")
    toy.write_stream(source, rows)
    invoke("monitor", "--catalog", catalog, "--catalog", tweets, *classifiers, "--classifier",
           f"orgs=tweetner@{tiny_gpt2_dir}", "--input", source, "--time-field", "time", "--output", output)
    labelled = read_jsonl(output / "labelled.jsonl")
    assert len(labelled) == 60 and all(set(row["entities"]) == {"orgs"} for row in labelled)
    mentions = Counter()  # (day, entity text) -> documents naming it, recounted here
    for row in labelled:
        for entity in row["entities"]["orgs"]:
            assert row["document"]["text"][entity["start"]:entity["end"]] == entity["text"]
        for name in {entity["text"] for entity in row["entities"]["orgs"]}:
            mentions[row["time"][:10], name] += 1
    assert mentions, "the zero-shot entity classifier found nothing to count"
    table = list(csv.DictReader((output / "windows.csv").open()))
    counted = {(row["window_start"][:10], row["label"]): int(row["count"]) for row in table
               if row["classifier"] == "orgs" and row["group"] == ""}
    assert counted == dict(mentions)
    # each entity is a group of the other classifiers too
    day, name = next(iter(mentions))
    group = [row for row in table if row["group"] == f"orgs={name}" and row["classifier"] == "tone"
             and row["window_start"].startswith(day)]
    assert sum(int(row["count"]) for row in group) == mentions[day, name]
