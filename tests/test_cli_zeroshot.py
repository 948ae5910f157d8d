import json
import math
import subprocess
import sys

import pytest
from catalog_files import NLI_FILES, SENTIMENT_FILES, write_catalog
from click.testing import CliRunner

from promptlab.cli import main
from cli_run import invoke

REQUIRED = {"task", "template", "verbalizer", "model", "calibrate", "n", "accuracy", "macro_f1", "seconds",
            "examples_per_second"}


@pytest.mark.parametrize("model", ["tiny_gpt2_dir", "tiny_bert_dir"])
@pytest.mark.parametrize("calibrate", ["none", "contextual", "pmi", "batch"])
def test_zeroshot_reports_metrics_and_writes_outputs(tmp_path, request, model, calibrate):
    root = write_catalog(tmp_path / "catalog", SENTIMENT_FILES)
    out = tmp_path / "out"
    result = invoke("zeroshot", "--catalog", root, "--task", "toy", "--template", "t1", "--calibrate", calibrate,
                    "--model", request.getfixturevalue(model), "--output", out, "--json", "--batch-size", 4)
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert REQUIRED <= set(summary) and summary["n"] == 6 and summary["calibrate"] == calibrate
    assert "confusion" in result.output and "precision" in result.output
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [str(i) for i in range(6)]
    for row in rows:
        assert set(row) == {"id", "gold", "predicted", "probabilities"}
        assert math.isclose(sum(row["probabilities"].values()), 1.0, abs_tol=1e-4)
        assert row["predicted"] == max(row["probabilities"], key=row["probabilities"].get)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == summary["accuracy"] == sum(r["gold"] == r["predicted"] for r in rows) / 6
    assert sum(map(sum, metrics["confusion"]["matrix"])) == 6


@pytest.mark.parametrize("model", ["tiny_llama_dir", "tiny_roberta_dir"])
def test_a_new_two_field_task_with_multi_word_labels_needs_only_files(tmp_path, request, model):
    root = write_catalog(tmp_path / "catalog", NLI_FILES)
    result = invoke("zeroshot", "--catalog", root, "--task", "nli", "--template", "t1",
                    "--model", request.getfixturevalue(model), "--json")
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["n"] == 4 and summary["verbalizer"] == "default"


def test_data_split_and_limit_options(tmp_path, tiny_gpt2_dir):
    root = write_catalog(tmp_path / "catalog", SENTIMENT_FILES)
    extra = tmp_path / "extra.csv"
    extra.write_text("text,label\ngreat fun,positive\nboring,0\nawful,negative\n")
    common = ["zeroshot", "--catalog", root, "--task", "toy", "--template", "t1", "--model", tiny_gpt2_dir, "--json"]
    assert json.loads(invoke(*common, "--data", extra).output.splitlines()[-1])["n"] == 3
    assert json.loads(invoke(*common, "--split", "train", "--limit", 5).output.splitlines()[-1])["n"] == 5


def test_templates_list_show_render(tmp_path):
    root = write_catalog(tmp_path / "catalog", NLI_FILES)
    listing = invoke("templates", "list", "--catalog", root).output
    assert "nli" in listing and "sentiment" in listing
    assert "{{ premise }}" in invoke("templates", "show", "--task", "nli", "--template", "t1", "--catalog", root).output
    rendered = invoke("templates", "render", "--task", "nli", "--template", "t1", "--catalog", root, "-n", 1).output
    assert "'the movie was great Question: the movie was good? Answer: it is true.'" in rendered


def test_templates_check_is_tokenizer_aware(tmp_path, tiny_gpt2_dir):
    root = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                                "templates/toy/t2.jinja": "{{ text }} It was:{{ mask }}",
                                                "verbalizers/toy/default.yaml":
                                                    "labels:\n  negative: [terrible, masterpiece ending]\n"
                                                    "  positive: [great, masterpiece]\n"})
    result = CliRunner().invoke(main, ["templates", "check", "--task", "toy", "--model", str(tiny_gpt2_dir),
                                       "--catalog", str(root)])
    assert result.exit_code == 0, result.output
    assert "'masterpiece' (positive) is" in result.output and "tokens" in result.output
    assert "no space" in result.output and "t2.jinja" in result.output
    assert "start with the same token" in result.output


@pytest.mark.parametrize("model", ["tiny_gpt2_dir", "tiny_llama_dir"])
def test_templates_check_warns_when_the_word_merges_with_the_text_before_the_slot(tmp_path, request, model):
    root = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                                "templates/toy/t1.jinja": "{{ text }} It wa{{ mask }}",
                                                "verbalizers/toy/default.yaml":
                                                    "labels:\n  negative: [s]\n  positive: [great]\n"})
    result = CliRunner().invoke(main, ["templates", "check", "--task", "toy", "--model",
                                       str(request.getfixturevalue(model)), "--catalog", str(root)])
    assert result.exit_code == 0, result.output
    assert "'s' merges with the text before the slot" in result.output  # 'wa' + 's' is the token 'was'
    assert "'great' merges" not in result.output


def test_templates_check_fails_on_broken_files(tmp_path):
    root = write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES,
                                                "templates/toy/bad.jinja": "{{ text }",
                                                "templates/toy/t3.jinja": "{{ review }} {{ mask }}"})
    result = CliRunner().invoke(main, ["templates", "check", "--task", "toy", "--catalog", str(root)])
    assert result.exit_code == 2
    assert "bad.jinja:1" in result.output and "review" in result.output


def test_builtin_catalog_is_clean():
    result = CliRunner().invoke(main, ["templates", "check"])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output


def test_module_entry_point_and_light_commands_do_not_import_torch():
    code = ("import sys; from promptlab.cli import main\n"
            "for args in (['--help'], ['templates', 'list'], ['models', 'list'], ['verbalizers', '--help'],\n"
            "             ['verbalizers', 'search', '--help']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--words-per-label" in result.stdout and result.stdout.strip().splitlines()[-1] == "False"
    assert "zeroshot" in subprocess.run([sys.executable, "-m", "promptlab", "--help"], capture_output=True,
                                        text=True, check=True).stdout
