"""Sentence-encoder methods (head --encoder, setfit), their artefacts, and out-of-scope rejection.

The encoders are the tiny random models of the conftest, read by sentence-transformers with its
default mean pooling, so nothing here needs the real MiniLM.
"""
from __future__ import annotations

import json

import pytest
import torch
from catalog_files import write_catalog
from click.testing import CliRunner
from fewshot_toys import NEGATIVE, POSITIVE, TOY_FILES

from promptlab.catalog.catalog import Catalog, Setup
from promptlab.cli import main
from promptlab.backends.sentence_encoders import load_encoder
from promptlab.errors import UserError
from promptlab.methods import run_method
from promptlab.metrics.rejection import OUT_OF_SCOPE, check_threshold, reject_below, rejection_metrics
from promptlab.kinds import task_examples


# The toy task with test texts of their own (fewshot leaves train texts that are also test texts out).
TEST_ROWS = "".join(f'{{"id": "t{i}", "text": "it was {word}", "label": "{label}"}}\n' for i, (word, label) in
                    enumerate([(word, "positive") for word in POSITIVE] + [(word, "negative") for word in NEGATIVE]))


@pytest.fixture(scope="module")
def toy_catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("toy-catalog"), {**TOY_FILES, "tasks/data/test.jsonl": TEST_ROWS})



@pytest.fixture(scope="module")
def setup(toy_catalog) -> Setup:
    return Setup.load(Catalog.from_options([toy_catalog]), "toy", "t1")


def run(method, setup, *, seed=13, k=4, reject_threshold=None, save_to=None, **options):
    return run_method(method, setup=setup, loaded=None, train_pool=task_examples(setup.task, "train"),
                      test_examples=task_examples(setup.task, "test"), k=k, seed=seed, options=options, device="cpu",
                      reject_threshold=reject_threshold, save_to=save_to)


# ---------------------------------------------------------------- encoder methods

def test_head_on_an_encoder_needs_no_scoring_model(setup, tiny_encoder):
    result = run("head", setup, encoder=str(tiny_encoder))
    assert result["train_steps"] == 0 and len(result["predictions"]) == 10 and result["c"] in (0.01, 0.1, 1.0, 10.0)


def test_setfit_trains_the_encoder_and_saves_what_reproduces_its_predictions(setup, tiny_encoder, tmp_path):
    from promptlab.methods.artefacts import load_trained
    from promptlab.apply.registry import open_classifier
    options = {"encoder": str(tiny_encoder), "loss": "cosine", "num_iterations": 1, "steps": 3, "lr": 1e-3,
               "batch_size": 8}
    result = run("setfit", setup, **options, save_to=tmp_path / "seed-13")
    assert result["contrastive_steps"] == result["train_steps"] == 3
    again = run("setfit", setup, **options)  # same seed, same numbers
    assert again["predictions"] == result["predictions"] and again["dev_accuracy"] == result["dev_accuracy"]
    folder = tmp_path / "seed-13"
    assert (folder / "encoder" / "model.safetensors").is_file() and not list(folder.rglob("*.pkl"))
    saved = load_trained(folder)
    assert saved.method == "setfit" and saved.metadata["model_kind"] == "encoder"
    opened = open_classifier(setup, saved, model=None, device="cpu")
    assert opened.loaded.fingerprint != load_encoder(str(tiny_encoder), device="cpu").fingerprint  # trained copy
    labels = setup.task.labels
    reapplied = [labels[i] for i in opened.classifier.logprobs(task_examples(setup.task, "test")).argmax(-1).tolist()]
    assert reapplied == [row["predicted"] for row in result["predictions"]]


def test_triplet_loss_over_label_grouped_batches(setup, tiny_encoder):
    result = run("setfit", setup, encoder=str(tiny_encoder), loss="triplet", epochs=1, batch_size=8)
    assert result["train_steps"] >= 1 and len(result["predictions"]) == 10


def label_word_margin(setup, folder) -> float:
    """Mean cosine of each test text to its label's words minus to the other label's words."""
    import numpy as np
    words = {"negative": ["bad", "awful"], "positive": ["good", "great"]}  # the toy verbalizer
    model = load_encoder(str(folder), device="cpu").model
    gaps = []
    for row in task_examples(setup.task, "test"):
        text, *own = model.encode([row["text"], *words[row["label"]]], normalize_embeddings=True)
        other = model.encode(words["positive" if row["label"] == "negative" else "negative"],
                             normalize_embeddings=True)
        gaps.append(np.mean(np.asarray(own) @ text) - np.mean(other @ text))
    return float(np.mean(gaps))


def test_label_words_loss_pulls_messages_towards_their_labels_words(setup, tiny_encoder, tmp_path):
    result = run("setfit", setup, encoder=str(tiny_encoder), loss="label-words", epochs=10, lr=3e-2, batch_size=8,
                 save_to=tmp_path / "seed-13")
    assert result["loss"] == "label-words" and result["contrastive_steps"] >= 4
    # 0.24 against 0.01 here
    assert label_word_margin(setup, tmp_path / "seed-13" / "encoder") > label_word_margin(setup, tiny_encoder) + 0.1


def test_label_words_loss_trains_under_bfloat16_autocast_with_float32_weights(setup, tiny_encoder, tmp_path):
    from safetensors.torch import load_file
    # lr 1e-2: at 3e-2 this toy's training is unstable (the margin swings with the thread count in either precision)
    options = {"encoder": str(tiny_encoder), "loss": "label-words", "epochs": 10, "lr": 1e-2, "batch_size": 8}
    for precision in ("float32", "bfloat16"):
        run("setfit", setup, precision=precision, save_to=tmp_path / precision, **options)
    full, autocast = (load_file(str(tmp_path / precision / "encoder" / "model.safetensors"))
                      for precision in ("float32", "bfloat16"))
    assert {tensor.dtype for tensor in autocast.values()} == {torch.float32}  # the weights and updates stay float32
    # the same seed and batches: only the forwards' and backwards' precision differs, and the weights with it
    assert any(not torch.equal(full[name], autocast[name]) for name in full)
    # it learns the words as float32 does (margins 0.277 and 0.274 here, against 0.007 untrained)
    learned = label_word_margin(setup, tmp_path / "bfloat16" / "encoder")
    assert learned > label_word_margin(setup, tiny_encoder) + 0.2
    assert learned == pytest.approx(label_word_margin(setup, tmp_path / "float32" / "encoder"), abs=0.02)
    with pytest.raises(UserError, match="loss=label-words only"):
        run("setfit", setup, encoder=str(tiny_encoder), loss="triplet", precision="bfloat16")


def test_label_words_join_the_heads_training_rows(setup, tiny_encoder, tmp_path):
    """k = 1 leaves the head one message per label; with label-words it also learns each verbalizer word."""
    from promptlab.methods.artefacts import load_trained
    options = {"encoder": str(tiny_encoder), "epochs": 1, "batch_size": 8}
    run("setfit", setup, k=1, loss="label-words", save_to=tmp_path / "words", **options)
    run("setfit", setup, k=1, loss="triplet", save_to=tmp_path / "triplet", **options)
    # the head's scaler saw every training row: its mean is that of the rows' embeddings
    for name, rows in (("words", ["bad", "awful", "good", "great"]), ("triplet", [])):
        saved = load_trained(tmp_path / name)
        encoder = load_encoder(str(tmp_path / name / "encoder"), device="cpu")
        train_ids = set(saved.metadata["sample"]["train_ids"])
        texts = [example["text"] for example in task_examples(setup.task, "train") if str(example["id"]) in train_ids]
        assert len(texts) == 2  # k = 1 of two labels
        expected = encoder.encode(texts + rows).mean(0)
        assert saved.tensors["mean"].numpy() == pytest.approx(expected, abs=1e-5)


def test_label_words_and_self_training_both_join_the_frozen_heads_rows(setup, tiny_encoder, tmp_path):
    """head --encoder E --option label_words=true --option pseudo_labels=N (Banking77's best by dev): with N
    above the pool's size every unlabelled train text joins, so the scaler saw sample, words and pool."""
    from promptlab.methods.artefacts import load_trained
    run("head", setup, k=1, encoder=str(tiny_encoder), label_words=True, pseudo_labels=1000,
        save_to=tmp_path / "seed-13")
    saved = load_trained(tmp_path / "seed-13")
    sample = saved.metadata["sample"]
    train_ids, sampled = set(sample["train_ids"]), set(sample["train_ids"]) | set(sample["dev_ids"])
    pool = task_examples(setup.task, "train")
    texts = ([example["text"] for example in pool if str(example["id"]) in train_ids] + ["bad", "awful", "good", "great"]
             + [example["text"] for example in pool if str(example["id"]) not in sampled])
    assert len(texts) == len(pool) - 2 + 4  # the k = 1 dev sample of two labels is all that stays out
    expected = load_encoder(str(tiny_encoder), device="cpu").encode(texts).mean(0)
    assert saved.tensors["mean"].numpy() == pytest.approx(expected, abs=1e-5)


def test_label_words_loss_takes_gentler_defaults_and_refuses_unknown_losses():
    from promptlab.methods.encoder_heads import SetFitOptions
    assert (SetFitOptions(loss="label-words").epochs, SetFitOptions(loss="label-words").lr) == (6, 5e-5)
    assert (SetFitOptions().epochs, SetFitOptions(lr=3e-5).lr) == (3, 3e-5)
    from promptlab.methods import method_options
    chosen = method_options("setfit", {"loss": "label-words"})  # as --option loss=label-words reaches it
    assert (chosen.epochs, chosen.lr) == (6, 5e-5)
    with pytest.raises(UserError, match="label-words"):
        SetFitOptions(loss="label_words")


def test_head_on_an_encoder_saves_an_artefact_that_applies(setup, tiny_encoder, tmp_path):
    from promptlab.methods.artefacts import load_trained
    from promptlab.apply.registry import open_classifier
    result = run("head", setup, encoder=str(tiny_encoder), save_to=tmp_path / "seed-13")
    opened = open_classifier(setup, load_trained(tmp_path / "seed-13"), model=None, device="cpu")
    labels = setup.task.labels
    reapplied = [labels[i] for i in opened.classifier.logprobs(task_examples(setup.task, "test")).argmax(-1).tolist()]
    assert reapplied == [row["predicted"] for row in result["predictions"]]


def test_head_on_joined_encoders_saves_an_artefact_that_applies(setup, tiny_encoder, tiny_roberta_dir, tmp_path):
    """head --encoder A+B: the head is fitted on both encoders' rows, and reapplying it loads both again."""
    from promptlab.methods.artefacts import load_trained
    from promptlab.apply.registry import open_classifier
    second = tmp_path / "tiny-st-roberta"  # saved whole: a bare checkpoint draws its missing pooler anew each load
    load_encoder(str(tiny_roberta_dir), device="cpu").save(second)
    joined = f"{tiny_encoder}+{second}"
    result = run("head", setup, encoder=joined, label_words=True, pseudo_labels=2, save_to=tmp_path / "seed-13")
    saved = load_trained(tmp_path / "seed-13")
    assert saved.state["encoder"] == joined and saved.tensors["coef"].shape[1] == 2 * 32
    opened = open_classifier(setup, saved, model=None, device="cpu")
    labels = setup.task.labels
    reapplied = [labels[i] for i in opened.classifier.logprobs(task_examples(setup.task, "test")).argmax(-1).tolist()]
    assert reapplied == [row["predicted"] for row in result["predictions"]]


def test_fewshot_cli_runs_setfit_without_loading_a_language_model(toy_catalog, tiny_encoder, tmp_path):
    output = tmp_path / "run"
    result = CliRunner().invoke(main, ["fewshot", "--task", "toy", "--template", "t1", "--method", "setfit",
                                       "--encoder", str(tiny_encoder), "--k", "4", "--seeds", "13,21", "--steps", "2",
                                       "--option", "loss=cosine", "--reject-below", "0.4",
                                       "--catalog", str(toy_catalog), "--model", "no-such-model-folder/x/y",
                                       "--output", str(output), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["method"] == "setfit" and summary["zero_shot_accuracy"] is None
    assert [run["train_steps"] for run in summary["per_seed"]] == [2, 2]
    for run in summary["per_seed"]:  # the share of test predictions answered out_of_scope
        rows = [json.loads(line) for line in (output / f"seed-{run['seed']}/predictions.jsonl").read_text().splitlines()]
        assert run["rejected"] == sum(row["predicted"] == OUT_OF_SCOPE for row in rows) / len(rows)
    assert (output / "seed-21" / "weights.safetensors").is_file() and (output / "seed-21" / "encoder").is_dir()


# ---------------------------------------------------------------- out of scope

def test_reject_below_answers_out_of_scope_under_the_threshold():
    probabilities = [[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]]
    assert reject_below(probabilities, ["a", "b", "c"], 0.5) == ["a", OUT_OF_SCOPE, "c"]
    assert rejection_metrics(["a", "b", "b"], ["a", OUT_OF_SCOPE, "c"]) == {"rejected": 1 / 3,
                                                                          "accepted_accuracy": 0.5}
    with pytest.raises(UserError, match="between 0 and 1"):
        check_threshold(1.5)


def test_reject_below_in_a_few_shot_run(setup, tiny_encoder):
    plain = run("head", setup, encoder=str(tiny_encoder))
    everything = run("head", setup, encoder=str(tiny_encoder), reject_threshold=0.999999)
    assert everything["rejected"] == 1.0 and everything["accuracy"] == 0.0 and everything["accepted_accuracy"] is None
    assert {row["predicted"] for row in everything["predictions"]} == {OUT_OF_SCOPE}
    nothing = run("head", setup, encoder=str(tiny_encoder), reject_threshold=1e-9)
    assert nothing["rejected"] == 0.0 and nothing["accuracy"] == plain["accuracy"]
    with pytest.raises(UserError, match="needs label probabilities"):
        run("majority", setup, reject_threshold=0.5)


# ---------------------------------------------------------------- the online-only financial task

def test_financial_sentiment_task_reads_phrasebank_through_datasets(monkeypatch):
    """The hub is out of reach here: a small fixture written for this test stands in for Financial
    PhraseBank, shaped like it (column `sentence`, ClassLabel negative/neutral/positive, one split)."""
    import datasets
    rows = {"sentence": ["Profit rose 20 % .", "The company is based in Espoo .", "Sales fell sharply ."] * 4,
            "label": [2, 1, 0] * 4}
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "neutral", "positive"])})
    calls = []

    def hub(name, config, *, split, data_files):
        calls.append((name, config, split))
        whole = datasets.Dataset.from_dict(rows, features=features)
        return whole.select(range(8)) if split == "train[:70%]" else whole.select(range(8, 12))

    monkeypatch.setattr(datasets, "load_dataset", hub)
    task = Catalog.from_options(()).task("financial-sentiment")
    train, test = task_examples(task, "train"), task_examples(task, "test")
    assert calls == [("takala/financial_phrasebank", "sentences_allagree", "train[:70%]"),
                     ("takala/financial_phrasebank", "sentences_allagree", "train[70%:]")]
    assert (len(train), len(test)) == (8, 4)
    assert train[0]["text"] == "Profit rose 20 % ." and train[0]["label"] == "positive"
    assert [example["label"] for example in test] == ["negative", "positive", "neutral", "negative"]
