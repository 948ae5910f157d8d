"""Progress lines off a terminal, ETAs by run kind, task default templates, and fast clear failures."""
from __future__ import annotations

import io
import time

import pytest
from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner

from promptlab.backends import models
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.runtime.progress import PlainProgress, RunTimes, progress_bar


def test_plain_progress_prints_done_total_rate_and_eta_lines():
    log = io.StringIO()
    with PlainProgress(10, "scoring", unit="ex", file=log, interval=0) as bar:
        bar.update(4)
        bar.set_postfix(loss="0.512", dev="75.0%")
        bar.update(6)
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("scoring: 4/10 (40%) ") and " ex/s, ETA " in lines[0]
    assert lines[-1].startswith("scoring: 10/10 (100%)") and lines[-1].endswith("· loss 0.512, dev 75.0%")


def test_a_short_run_prints_nothing_and_stderr_off_a_terminal_gets_plain_lines():
    log = io.StringIO()
    with PlainProgress(10, "scoring", file=log) as bar:  # default interval: seconds
        bar.update(10)
    assert log.getvalue() == ""
    assert isinstance(progress_bar(100, "x", file=io.StringIO()), PlainProgress)


def test_eta_counts_each_kind_of_run_at_its_own_measured_time():
    times = RunTimes()
    assert times.remaining(["zeroshot"]) is None
    times.add(("zeroshot", 0), 1.0)
    times.add(("softprompt", 16), 60.0)
    times.add(("softprompt", 16), 80.0)
    assert times.remaining([("softprompt", 16)] * 9) == pytest.approx(630.0)
    assert times.remaining([("finetune", 16)]) == pytest.approx((1.0 + 70.0) / 2)  # unmeasured: mean of kinds


def test_a_task_names_its_default_template(tmp_path):
    root = write_catalog(tmp_path / "c", {**SENTIMENT_FILES, "templates/toy/t2.jinja": "{{ text }} so {{ mask }}"})
    task_file = root / "tasks" / "toy.yaml"
    with pytest.raises(UserError, match="several templates and names no default"):
        Setup.load(Catalog.from_options([root]), "toy")
    task_file.write_text(task_file.read_text() + "template: t2\n")
    assert Setup.load(Catalog.from_options([root]), "toy").template.name == "t2"
    task_file.write_text(task_file.read_text().replace("template: t2", "template: t7"))
    with pytest.raises(UserError, match="its default, named by 'template:'"):
        Setup.load(Catalog.from_options([root]), "toy")


def test_built_in_tasks_have_a_default_template():
    catalog = Catalog.from_options()
    for name in catalog.task_names():
        assert Setup.load(catalog, name).template.name == "t1"


def test_an_unknown_task_points_at_catalog_and_promptlab_path():
    result = CliRunner().invoke(main, ["predict", "--task", "sentimnt", "--input", "-", "--output", "-"])
    assert result.exit_code == 2 and "did you mean 'sentiment'?" in result.output
    assert "--catalog DIR" in result.output and "PROMPTLAB_PATH" in result.output


def test_templates_check_counts_notes_and_warnings_by_their_printed_names(tmp_path, tiny_gpt2_dir):
    root = write_catalog(tmp_path / "c", {**SENTIMENT_FILES, "verbalizers/toy/default.yaml":
                                          "labels:\n  negative: [terrible]\n  positive: [masterpiece]\n"})
    result = CliRunner().invoke(main, ["templates", "check", "--model", str(tiny_gpt2_dir), "--catalog", str(root),
                                       "--task", "toy"])
    notes = result.output.count("\nnote: ") + result.output.startswith("note: ")
    assert notes >= 1 and f"0 error(s), 0 warning(s), {notes} note(s)" in result.output


def test_an_unreachable_hub_fails_at_once(monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1:9")  # a closed local port: refused at once
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    models.hub_reachable.cache_clear()
    started = time.perf_counter()
    try:
        assert not models.hub_reachable()
        with pytest.raises(UserError, match="not reachable on the hub"):
            models.resolve_model("some-org/some-model")
    finally:
        models.hub_reachable.cache_clear()
    assert time.perf_counter() - started < 10
