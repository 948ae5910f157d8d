"""Few-shot methods through run_method: the contract the CLI and the eval harness rely on."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from catalog_files import NLI_FILES, write_catalog
from fewshot_toys import TOY_FILES, sensitive_model

from promptlab.catalog.catalog import Catalog, Setup
from promptlab.methods.demonstrations import (
    random_choice,
    render_demonstration,
    similar_choice,
    with_demonstrations,
)
from promptlab.errors import UserError
from promptlab.backends import features
from promptlab.backends.features import example_text, features_of, pooled_features
from promptlab.kinds import KINDS
from promptlab.methods import DEFAULT_OPTIONS, METHODS, method_options, methods_of, run_method
from promptlab.backends.models import load_model
from promptlab.data.sampling import sample_kshot
from promptlab.catalog.template import Prompt, parse_template
from promptlab.kinds import task_examples

FAST = {"softprompt": {"steps": 3, "eval_every": 2, "batch_size": 8}, "finetune": {"steps": 2, "eval_every": 2},
        "lora": {"steps": 2, "eval_every": 2},
        "finetune-head": {"steps": 2, "eval_every": 2}, "icl": {"per_class": 2}, "head": {}, "majority": {},
        "setfit": {"loss": "cosine", "num_iterations": 1, "steps": 2, "batch_size": 8}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    catalog = Catalog.from_options([write_catalog(tmp_path_factory.mktemp("toy-catalog"), TOY_FILES)])
    return Setup.load(catalog, "toy", "t1")


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir, tmp_path_factory):
    return load_model(str(sensitive_model(tiny_gpt2_dir, tmp_path_factory.mktemp("sensitive-gpt2"))), device="cpu")


@pytest.fixture(scope="module")
def bert(tiny_bert_dir):
    return load_model(str(tiny_bert_dir), device="cpu")


def run(method, setup, loaded, *, seed=13, k=4, **options):
    if method == "setfit":  # the tiny model's own folder serves as the sentence encoder
        options.setdefault("encoder", loaded.source)
    return run_method(method, setup=setup, loaded=loaded, train_pool=task_examples(setup.task, "train"),
                      test_examples=task_examples(setup.task, "test"), k=k, seed=seed, options={**FAST[method], **options})


def weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_registry_names_and_defaults():
    assert METHODS == ("softprompt", "finetune", "lora", "finetune-head", "icl", "head", "setfit", "majority",
                       "token-finetune", "token-head", "entity-prompt")
    assert set(DEFAULT_OPTIONS) == set(METHODS)
    assert DEFAULT_OPTIONS["softprompt"]["init"] == "labels" and DEFAULT_OPTIONS["entity-prompt"]["init"] == "labels"
    for kind in KINDS.values():  # the CLI lists each kind's methods without importing torch
        assert kind.methods == methods_of(kind.name)


@pytest.mark.parametrize("method", methods_of("classification"))
def test_every_method_returns_the_contract_and_leaves_the_model_untouched(method, setup, gpt2):
    before = weights(gpt2.model)
    flags = [p.requires_grad for p in gpt2.model.parameters()]
    result = run(method, setup, gpt2)
    assert {"accuracy", "macro_f1", "dev_accuracy", "seconds", "train_steps"} <= set(result)
    correct = sum(row["predicted"] == row["gold"] for row in result["predictions"])
    # seconds are rounded to milliseconds: the majority baseline now takes less than one
    assert result["accuracy"] == correct / len(result["predictions"]) and isinstance(result["seconds"], float)
    assert result["method"] == method and result["seed"] == 13 and result["k"] == 4
    assert result["sample"]["checksum"] == sample_kshot(task_examples(setup.task, "train"), setup.task.labels, 4, 13).checksum
    assert len(result["predictions"]) == 10 and result["metrics"]["n"] == 10
    assert result["train_steps"] == (0 if method in ("icl", "head", "majority") else result["train_steps"] or 1)
    assert all(torch.equal(p, before[name]) for name, p in gpt2.model.named_parameters())
    assert [p.requires_grad for p in gpt2.model.parameters()] == flags
    assert all(p.grad is None for p in gpt2.model.parameters())


@pytest.mark.parametrize("method", ["softprompt", "finetune", "lora", "finetune-head", "head"])
def test_same_seed_same_numbers(method, setup, gpt2):
    first, second = run(method, setup, gpt2, seed=21), run(method, setup, gpt2, seed=21)
    for key in ("accuracy", "dev_accuracy", "train_steps", "predictions", "losses", "sample"):
        assert first.get(key) == second.get(key), key


def test_finetune_trains_a_copy_on_a_masked_lm(setup, bert):
    before = weights(bert.model)
    result = run("finetune", setup, bert, steps=3, eval_every=1, lr=1e-3)
    assert result["train_steps"] == 3 and len(result["dev_history"]) == 4
    assert result["losses"][-1] != result["losses"][0]
    assert all(torch.equal(p, before[name]) for name, p in bert.model.named_parameters())


def test_softprompt_with_p_tuning_encoder_on_a_masked_lm(setup, bert):
    result = run("softprompt", setup, bert, reparameterize="mlp", init="labels", prompt_length=3)
    assert result["train_steps"] == 3 and result["options"]["reparameterize"] == "mlp"


def test_icl_needs_a_causal_model(setup, bert):
    with pytest.raises(UserError, match="icl needs a causal model"):
        run("icl", setup, bert)


def test_icl_similar_selection_runs(setup, gpt2):
    result = run("icl", setup, gpt2, selection="similar", per_class=1)
    assert result["demonstrations_per_prompt"] == 2 and result["dev_accuracy"] is not None


def test_majority_predicts_the_first_label_on_a_balanced_sample(setup, gpt2):
    result = run("majority", setup, gpt2)
    assert {row["predicted"] for row in result["predictions"]} == {"negative"}
    assert result["accuracy"] == 0.5 and result["dev_accuracy"] == 0.5


def test_head_picks_c_on_dev(setup, gpt2):
    result = run("head", setup, gpt2, c_values=[0.1, 1.0])
    # the same standardised logistic regression fitted here on the seed's sample, scored on its dev half
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = sample_kshot(task_examples(setup.task, "train"), setup.task.labels, 4, 13)

    def x(examples):
        texts = [example_text(setup.template, example) for example in examples]
        return features_of(gpt2.model, gpt2.tokenizer, texts, gpt2.device, layer=-1).numpy()

    def y(examples):
        return [setup.task.labels.index(example["label"]) for example in examples]

    dev = {c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
           .fit(x(split.train), y(split.train)).score(x(split.dev), y(split.dev)) for c in (0.1, 1.0)}
    best = 0.1 if dev[0.1] >= dev[1.0] else 1.0  # the first C wins a tie
    assert result["c"] == best and result["dev_accuracy"] == dev[best]


@pytest.mark.parametrize("method, options, message", [
    ("softprompt", {"step": 3}, "(?s)has no option 'step'.*did you mean 'steps'"),
    ("majority", {"lr": 1.0}, "(?s)has no option 'lr'.*takes no options"),
    ("softprompt", {"init": "random"}, "init='random' is not one of"),
    ("finetune", {"lr": -1}, "lr must be a positive number"),
    ("icl", {"selection": "nearest"}, "selection='nearest'"),
    ("fewshot", {}, "unknown method 'fewshot'"),
])
def test_option_mistakes_are_user_errors(method, options, message):
    with pytest.raises(UserError, match=message):
        method_options(method, options)


def test_too_few_training_examples_is_a_user_error(setup, gpt2):
    with pytest.raises(UserError, match="k=11 needs 22"):
        run("majority", setup, gpt2, k=11)


# ---------------------------------------------------------------- demonstrations

def test_demonstrations_use_the_gold_labels_first_word_and_wrap_the_prompt(setup):
    example = {"id": "x", "text": "fun", "label": "positive"}
    assert render_demonstration(setup.template, setup.verbalizer, example) == "fun it was good"
    wrapped = with_demonstrations(Prompt("great it was ", "."), ["a", "b"], "\n\n")
    assert wrapped == Prompt("a\n\nb\n\ngreat it was ", ".")


def test_random_choice_is_balanced_seeded_and_varies_per_example():
    labels = ["n", "p", "n", "p", "n", "p"]
    chosen = random_choice(labels, ["n", "p"], per_class=2, count=20, seed="test-13")
    assert all(sorted(labels[i] for i in rows) == ["n", "n", "p", "p"] for rows in chosen)
    assert chosen == random_choice(labels, ["n", "p"], per_class=2, count=20, seed="test-13")
    assert len({tuple(rows) for rows in chosen}) > 1


def test_similar_choice_puts_the_most_similar_last():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]])
    chosen = similar_choice(train, torch.tensor([[1.0, 0.1]]), ["n", "p", "p", "n"], ["n", "p"], per_class=1)
    assert chosen == [[2, 0]]


def test_example_text_follows_the_template_field_order(tmp_path):
    nli = Setup.load(Catalog.from_options([write_catalog(tmp_path, NLI_FILES)]), "nli", "t1")
    assert example_text(nli.template, {"hypothesis": "h", "premise": "p"}) == "p\nh"
    # a field's name inside the template's own words or another field's name does not move it
    template = parse_template("The text follows: {{ context }} {{ review }} then {{ text }} {{ mask }}",
                              name="t", task="toy", path=Path("t.jinja"))
    assert example_text(template, {"text": "t", "context": "c", "review": "r"}) == "c\nr\nt"


@torch.inference_mode()
def test_features_do_not_depend_on_the_batch(gpt2):
    texts = ["great", "a very boring movie and not fun at all", "love it"]
    together = pooled_features(gpt2.model, gpt2.tokenizer, texts, gpt2.device).float()
    alone = torch.cat([pooled_features(gpt2.model, gpt2.tokenizer, [text], gpt2.device) for text in texts]).float()
    assert torch.allclose(together, alone, atol=1e-5)


def test_features_are_computed_once_per_model_layer_and_text(gpt2, monkeypatch):
    computed = []

    def counting(model, tokenizer, texts, device, *, layer):
        computed.extend((layer, text) for text in texts)
        return pooled_features(model, tokenizer, texts, device, layer=layer)

    monkeypatch.setattr(features, "pooled_features", counting)
    first = features_of(gpt2.model, gpt2.tokenizer, ["cached a b", "cached c", "cached a b"], gpt2.device)
    again = features_of(gpt2.model, gpt2.tokenizer, ["cached c", "cached d"], gpt2.device)
    other_layer = features_of(gpt2.model, gpt2.tokenizer, ["cached c"], gpt2.device, layer=1)
    assert sorted(computed) == [(-1, "cached a b"), (-1, "cached c"), (-1, "cached d"), (1, "cached c")]
    assert torch.equal(first[0], first[2]) and torch.equal(first[1], again[0])
    assert not torch.equal(other_layer[0], again[0])


def test_the_feature_cache_keeps_only_the_most_recently_used_texts(gpt2, monkeypatch):
    computed = []

    def counting(model, tokenizer, texts, device, *, layer):
        computed.extend(texts)
        return pooled_features(model, tokenizer, texts, device, layer=layer)

    monkeypatch.setattr(features, "pooled_features", counting)
    monkeypatch.setattr(features, "FEATURE_CACHE_TEXTS", 3)
    monkeypatch.setattr(features, "_FEATURES", type(features._FEATURES)())
    features_of(gpt2.model, gpt2.tokenizer, ["lru a", "lru b", "lru c"], gpt2.device)
    features_of(gpt2.model, gpt2.tokenizer, ["lru a"], gpt2.device)  # a is now the most recent
    features_of(gpt2.model, gpt2.tokenizer, ["lru d"], gpt2.device)  # evicts b, the least recent
    assert len(features._FEATURES[gpt2.model]) == 3
    computed.clear()
    features_of(gpt2.model, gpt2.tokenizer, ["lru a", "lru c", "lru d", "lru b"], gpt2.device)
    assert computed == ["lru b"]


def test_icl_draws_stay_those_of_the_seeded_sequence_while_only_a_window_is_kept():
    from itertools import islice

    from promptlab.methods.demonstrations import random_draws
    from promptlab.methods.icl import _DrawWindow
    labels = ["a", "b"]
    train_labels = ["a", "b", "a", "b", "a", "b"]
    sequence = list(islice(random_draws(train_labels, labels, 2, "seed"), 40))
    window = _DrawWindow(lambda: random_draws(train_labels, labels, 2, "seed"), keep=8)
    asked = [range(0, 5), range(5, 20), range(20, 23), range(2, 4), range(30, 40), range(38, 40)]
    for positions in asked:
        assert window.at(list(positions)) == [sequence[i] for i in positions]
        assert len(window._window) <= 8
