"""The frozen-feature head's C chosen by cross-validation over the whole k-shot sample (select=cv), its one
round of self-training on the unlabelled rest of the train split (pseudo_labels), and a task's own default
model (`model:` in the task file: news-sentiment-zh reads Chinese with gemma3-270m)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from catalog_files import SENTIMENT_FILES, write_catalog
from cli_run import invoke, last_json
from fewshot_toys import TOY_FILES
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from promptlab.backends.aliases import ALIASES
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.errors import UserError
from promptlab.kinds import task_examples
from promptlab.methods import method_options, run_method, unlabelled_rest
from promptlab.methods.logistic_head import fit_head_cv, self_trained
from promptlab.data.sampling import sample_kshot


def _clusters(per_label: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """Two well-separated 2-d clusters, `per_label` rows each: every C separates them."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-3, 0.3, (per_label, 2)), rng.normal(3, 0.3, (per_label, 2))])
    return x, [0] * per_label + [1] * per_label


def test_cv_keeps_the_first_c_on_a_tie_and_refits_on_every_row():
    x, y = _clusters(8)
    for c_values in ([0.5, 2.0], [2.0, 0.5]):
        fitted = fit_head_cv(x, y, c_values, seed=13)
        # perfectly separable: every C has cross-validated macro-F1 1.0, so the first is kept
        assert fitted.c == c_values[0] and fitted.dev_accuracy == 1.0
        by_hand = make_pipeline(StandardScaler(), LogisticRegression(C=c_values[0], max_iter=2000)).fit(x, y)
        np.testing.assert_allclose(fitted.classifier[-1].coef_, by_hand[-1].coef_, rtol=1e-6)


def test_cv_prefers_the_c_that_generalises():
    # label 1 is told by feature 0 alone; 40 noise features let a weakly regularised head memorise the rows
    rng = np.random.default_rng(1)
    y = np.array([0, 1] * 12)
    x = np.concatenate([(y * 2.0 - 1)[:, None] + rng.normal(0, 1.0, (24, 1)), rng.normal(0, 1.0, (24, 40))], 1)
    fitted = fit_head_cv(x, y, [100.0, 1e-4], seed=0)  # a tie would keep 100
    assert fitted.c == 1e-4


def test_cv_needs_two_examples_of_every_label():
    with pytest.raises(UserError, match="at least 2 labelled examples of every label"):
        fit_head_cv(np.zeros((3, 2)), [0, 0, 1], [1.0], seed=0)


def test_self_training_adds_the_most_confident_unlabelled_row_of_each_label():
    x, y = _clusters(4)
    fitted = fit_head_cv(x, y, [1.0], seed=0)
    # along the diagonal: -6 is the surest label 0, 6 the surest label 1; the others are less sure
    unlabelled = np.array([[-1.0, -1.0], [-6.0, -6.0], [0.5, 0.5], [6.0, 6.0], [2.0, 2.0]])
    trained = self_trained(fitted, x, y, unlabelled, per_label=1)
    by_hand = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)).fit(
        np.concatenate([x, [[-6.0, -6.0], [6.0, 6.0]]]), y + [0, 1])
    np.testing.assert_allclose(trained.classifier[-1].coef_, by_hand[-1].coef_, rtol=1e-6)
    np.testing.assert_allclose(trained.classifier[-1].intercept_, by_hand[-1].intercept_, rtol=1e-6, atol=1e-9)
    assert trained.c == fitted.c and self_trained(fitted, x, y, np.empty((0, 2)), per_label=3) is fitted


def test_head_options_name_their_mistakes():
    assert method_options("head").c_values == [0.01, 0.1, 1.0, 10.0]
    assert min(method_options("head", {"select": "cv"}).c_values) < 0.01  # cv searches stronger regularisation
    for options in ({"select": "crossval"}, {"pseudo_labels": -1}, {"pseudo_labels": True},
                    {"pseudo_labels": "100"}):
        with pytest.raises(UserError):
            method_options("head", options)


@pytest.fixture(scope="module")
def toy_setup(tmp_path_factory) -> Setup:
    return Setup.load(Catalog.from_options([write_catalog(tmp_path_factory.mktemp("toy"), TOY_FILES)]), "toy", "t1")


def test_the_unlabelled_rest_is_the_pool_outside_the_sample_without_labels(toy_setup):
    pool = task_examples(toy_setup.task, "train")
    split = sample_kshot(pool, toy_setup.task.labels, 4, 13)
    rest = unlabelled_rest(pool, split, toy_setup.task.label_field)
    sampled = set(split.ids["train"]) | set(split.ids["dev"])
    assert [row["id"] for row in rest] == [example["id"] for example in pool if example["id"] not in sampled]
    assert len(rest) == len(pool) - 16 and all("label" not in row and row["text"] for row in rest)


def test_a_cross_validated_self_trained_head_repeats_and_reloads_to_its_predictions(toy_setup, tiny_encoder,
                                                                                    tmp_path):
    from promptlab.apply.registry import open_classifier
    from promptlab.methods.artefacts import load_trained

    def run(save_to=None):
        return run_method("head", setup=toy_setup, loaded=None, train_pool=task_examples(toy_setup.task, "train"),
                          test_examples=task_examples(toy_setup.task, "test"), k=4, seed=13, device="cpu",
                          options={"encoder": str(tiny_encoder), "select": "cv", "pseudo_labels": 2}, save_to=save_to)
    result = run(tmp_path / "seed-13")
    assert result["c"] in method_options("head", {"select": "cv"}).c_values and len(result["predictions"]) == 10
    assert run()["predictions"] == result["predictions"]
    opened = open_classifier(toy_setup, load_trained(tmp_path / "seed-13"), model=None, device="cpu")
    labels = toy_setup.task.labels
    logprobs = opened.classifier.logprobs(task_examples(toy_setup.task, "test"))
    assert [labels[i] for i in logprobs.argmax(-1).tolist()] == [row["predicted"] for row in result["predictions"]]


# ---------------------------------------------------------------- a task's default model

def test_zeroshot_defaults_to_the_task_files_model(tmp_path, tiny_gpt2_dir):
    files = dict(SENTIMENT_FILES)
    files["tasks/toy.yaml"] += f"model: {json.dumps(str(tiny_gpt2_dir))}\n"
    root = write_catalog(tmp_path / "catalog", files)
    summary = last_json(invoke("zeroshot", "--catalog", root, "--task", "toy", "--template", "t1", "--json"))
    assert summary["model"] == str(tiny_gpt2_dir)


def test_a_task_model_must_be_a_name(tmp_path):
    files = dict(SENTIMENT_FILES)
    files["tasks/toy.yaml"] += "model: [gemma3-270m]\n"
    root = write_catalog(tmp_path / "catalog", files)
    result = invoke("zeroshot", "--catalog", root, "--task", "toy", exit_code=2)
    assert "'model' must be a name" in result.output and "toy.yaml:" in result.output


def test_chinese_news_sentiment_defaults_to_a_model_that_reads_chinese():
    task = Catalog.from_options(()).task("news-sentiment-zh")
    assert task.model == "gemma3-270m" and "Chinese" in ALIASES[task.model].languages


# ---------------------------------------------------------------- benchmarks/zh_news_dev.py's label-shift estimators

def _benchmark():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "zh_news_dev.py"
    spec = importlib.util.spec_from_file_location("zh_news_dev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_em_prior_is_the_fixed_point_a_root_finder_gives():
    from scipy.optimize import brentq
    # under a 50/50 training prior; the likelihood of the prior peaks inside (0, 1), near 0.7
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])

    def excess(share):  # mean posterior of label 0 under prior (share, 1 - share), minus share
        adjusted = probabilities[:, 0] * share / (probabilities[:, 0] * share + probabilities[:, 1] * (1 - share))
        return adjusted.mean() - share
    share = brentq(excess, 0.3, 0.99)  # 0 and 1 are fixed points too; EM from 50/50 reaches the inner one
    prior = _benchmark().em_prior(probabilities, np.array([0.5, 0.5]))
    np.testing.assert_allclose(prior, [share, 1 - share], atol=1e-6)


def test_bbse_prior_with_a_perfect_classifier_is_the_predicted_shares():
    dev_probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])  # every dev row right
    target = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.1, 0.9]])  # 3 of 4 predicted label 0
    prior = _benchmark().bbse_prior(dev_probabilities, np.array([0, 1, 0, 1]), target)
    np.testing.assert_allclose(prior, [0.75, 0.25])


def test_templates_check_reads_the_label_words_with_the_tasks_model(tmp_path):
    files = dict(SENTIMENT_FILES)
    files["tasks/toy.yaml"] += "model: no-such-model-folder\n"
    root = write_catalog(tmp_path / "catalog", files)
    result = invoke("templates", "check", "--catalog", root, "--task", "toy")
    # the task's model is the one tried (missing here, so its checks are skipped with a note, as the default's are)
    assert "no-such-model-folder" in result.output and "tokenizer checks skipped" in result.output
