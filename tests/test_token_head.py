"""token-head: a logistic-regression tagger on frozen token features with IOB2-valid decoding. The decoder is checked
against a brute-force search over every tag sequence, the features against transformers' own hidden states, and the
method end to end on a tiny Chinese gemma3: `fewshot` fits it, `predict --trained` tags raw Chinese text."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from catalog_files import write_catalog
from entity_files import one_thread  # noqa: F401 (fixture)
from test_chinese_predict import CATALOG, invoke, predict_test_texts, tiny_chinese_gemma  # noqa: F401 (fixture)

from promptlab.data.tags import to_iob2
from promptlab.errors import UserError
from promptlab.methods import method_options
from promptlab.methods.tag_decoding import best_tags
from promptlab.methods.token_finetune import TokenTagger
from promptlab.methods.token_head import LayerFeatures

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def reading_gemma(tmp_path_factory):
    """A tiny random Gemma 3 (three layers) whose BPE tokenizer reads text as text: each place name one token
    (北京), every other character one; its embeddings scaled up so that, as in a trained model, a token's own
    identity survives the random layers."""
    from tokenizers import Tokenizer, models, processors
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    from test_chinese_predict import FILLER, PEOPLE, PLACES

    folder = tmp_path_factory.mktemp("reading-gemma")
    characters = sorted(set("".join(PEOPLE + PLACES + FILLER)))
    vocab = {token: index for index, token in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *characters, *PLACES])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[(place[0], place[1]) for place in PLACES],
                                   unk_token="<unk>"))
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1,
                                               head_dim=16, max_position_embeddings=128, pad_token_id=0,
                                               bos_token_id=1, eos_token_id=2))
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(50)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def valid(sequence) -> bool:
    """IOB2 as promptlab reads it: nothing had to be repaired."""
    return not to_iob2(list(sequence), "IOB2", ["PER", "LOC"])[1]


@pytest.mark.parametrize("length", [1, 2, 3, 5])
def test_decoding_finds_the_best_valid_sequence_of_all(length):
    rng = np.random.default_rng(length)
    for _ in range(20):
        log_probabilities = np.log(rng.dirichlet(np.ones(len(TAGS)) * 0.3, size=length))
        every = [s for s in itertools.product(range(len(TAGS)), repeat=length) if valid([TAGS[i] for i in s])]
        best = max(every, key=lambda s: log_probabilities[np.arange(length), list(s)].sum())
        assert best_tags(log_probabilities, TAGS) == [TAGS[i] for i in best]


def test_decoding_repairs_what_the_argmax_would_cut_up():
    # argmax: B-LOC I-LOC I-PER I-LOC, two spans under IOB2 reading; the decoder keeps one four-character place
    probabilities = np.array([[0.1, 0.1, 0.0, 0.8, 0.0], [0.1, 0.0, 0.1, 0.0, 0.8],
                              [0.1, 0.0, 0.5, 0.0, 0.4], [0.1, 0.0, 0.0, 0.0, 0.9]])
    assert best_tags(np.log(probabilities + 1e-12), TAGS) == ["B-LOC", "I-LOC", "I-LOC", "I-LOC"]
    assert best_tags(np.zeros((0, len(TAGS))), TAGS) == []


def test_features_are_the_hidden_states_of_the_layers_read_and_the_rest_is_cut(tiny_chinese_gemma):
    sentence = list("王明去了北京。")
    reference = TokenTagger.load(str(tiny_chinese_gemma), ["PER", "LOC"], device="cpu", precision="float32")
    inputs, firsts, _ = reference.encode([sentence])
    with torch.no_grad():
        hidden = reference.model.base_model(**inputs, output_hidden_states=True).hidden_states
    expected = torch.cat([hidden[1][0, firsts[0]], hidden[2][0, firsts[0]]], dim=-1)

    tagger = TokenTagger.load(str(tiny_chinese_gemma), ["PER", "LOC"], device="cpu", precision="float32")
    features = LayerFeatures(tagger, [1, 2], reading="words")
    assert len(tagger.model.base_model.layers) == 2  # the third layer is never run
    (rows,) = features([sentence])
    assert rows.shape == (len(sentence), 64)
    np.testing.assert_allclose(rows, expected.numpy(), atol=1e-5)
    with pytest.raises(UserError, match="the model has 3 transformer layers"):
        LayerFeatures(TokenTagger.load(str(tiny_chinese_gemma), ["PER"], device="cpu"), [4])


def test_reading_text_gives_the_words_of_one_token_its_features_and_where_it_begins(reading_gemma):
    sentence = list("王明去了北京。")
    reference = TokenTagger.load(str(reading_gemma), ["PER", "LOC"], device="cpu", precision="float32")
    assert reference.tokenizer.tokenize("".join(sentence)) == ["王", "明", "去", "了", "北京", "。"]
    with torch.no_grad():
        hidden = reference.model.base_model(**reference.tokenizer("".join(sentence), return_tensors="pt"),
                                            output_hidden_states=True).hidden_states[2][0]
    tagger = TokenTagger.load(str(reading_gemma), ["PER", "LOC"], device="cpu", precision="float32")
    (rows,) = LayerFeatures(tagger, [2], reading="text")([sentence])
    holders = [1, 2, 3, 4, 5, 5, 6]  # after <bos>: 北 and 京 are both read at the token 北京
    np.testing.assert_allclose(rows[:, :-1], hidden[holders].numpy(), atol=1e-5)
    assert rows[:, -1].tolist() == [1, 1, 1, 1, 1, 0, 1]  # 京 does not begin its token


def test_cached_features_are_the_computed_ones_and_each_sentence_is_read_once(reading_gemma, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "cache"))
    first, second, third = list("王明去了北京。"), list("李华在上海工作。"), list("张伟住广州")

    def features(cache_as=None):
        tagger = TokenTagger.load(str(reading_gemma), ["PER", "LOC"], device="cpu", precision="float32")
        return LayerFeatures(tagger, [2], cache_as=cache_as)

    plain = features()([first, second])
    cached = features("weights-a")
    for got, expected in zip(cached([first, second]), plain):
        np.testing.assert_allclose(got, expected, atol=1e-5)
    read = []
    again = features("weights-a")
    computed = again._computed
    monkeypatch.setattr(again, "_computed", lambda sentences: read.extend(sentences) or computed(sentences))
    rows = again([second, third, first])
    assert read == [third]  # the two sentences seen before come from the cache
    np.testing.assert_allclose(rows[2], plain[0], atol=1e-5)
    assert [len(row) for row in rows] == [8, 5, 7]
    other = features("weights-b")  # other weights: nothing shared
    monkeypatch.setattr(other, "_computed", lambda sentences: read.extend(sentences) or computed(sentences))
    other([first])
    assert read == [third, first]


def fewshot_token_head(model, tmp_path, monkeypatch, *options) -> tuple[Path, dict]:
    """`fewshot --method token-head` on the Chinese toy catalog, k = 10, seed 13, into tmp_path/run: the catalog's
    root and the seed's result."""
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "cache"))
    root = write_catalog(tmp_path / "catalog", CATALOG)
    invoke("fewshot", "--catalog", root, "--task", "people-places-zh", "--method", "token-head", "--model", model,
           "--k", 10, "--seeds", 13, *options, "--output", tmp_path / "run")
    return root, json.loads((tmp_path / "run" / "fewshot.json").read_text())["per_seed"][0]


def test_fewshot_token_head_and_predict_on_raw_chinese_text(reading_gemma, tmp_path, monkeypatch):
    root, run = fewshot_token_head(reading_gemma, tmp_path, monkeypatch, "--option", "layers=2,3", "--option",
                                   "c_values=[0.1,10]")
    assert run["f1"] >= 0.9  # ACCURACY_FLOOR: the names are learned from the frozen features (a random tagger: ~0)
    assert run["c"] in (0.1, 10) and [c for c, _ in run["dev_history"]] == [0.1, 10]
    texts, tagged, answers = predict_test_texts(tmp_path, root)
    # the reloaded tagger answers what the run tagged, as character offsets into the raw text
    assert [[(e["start"], e["end"], e["type"], e["score"]) for e in entities] for entities in answers[:-1]] == \
        [[(s["start"], s["end"], s["type"], s["score"]) for s in row["spans"]] for row in tagged]
    assert all(e["text"] == text[e["start"]:e["end"]] for text, entities in zip(texts, answers) for e in entities)
    found = {(e["start"], e["end"], e["type"], e["text"]) for e in answers[-1]}
    assert (2, 4, "PER", "王明") in found and (6, 8, "LOC", "广州") in found
    # the artefact holds the head only: a model that no longer has the weights it was fitted on is refused
    saved = tmp_path / "run" / "seed-13" / "trained.json"
    saved.write_text(saved.read_text().replace(run_fingerprint(saved), "0" * 16))
    refused = invoke("predict", "--trained", tmp_path / "run" / "seed-13", "--catalog", root, "--input",
                     tmp_path / "news.txt", "--output", tmp_path / "again.jsonl", exit_code=2)
    assert "this tagger was fitted on 0000000000000000" in refused.output


def run_fingerprint(trained_json) -> str:
    return json.loads(trained_json.read_text())["model_fingerprint"]


@pytest.mark.parametrize("options, message", [
    ({"layers": 0}, "option layers must be layer numbers"),
    ({"layers": "6,x"}, "option layers must be layer numbers"),
    ({"c_values": [0.1, -1]}, "c_values must be a list of positive numbers"),
    ({"echo": "yes"}, "option echo must be true or false"),
    ({"fit_dev": True, "c_values": [0.1, 1]}, "none is left to choose among c_values"),
    ({"forward_batch": 0}, "option forward_batch must be a positive whole number"),
])
def test_option_mistakes_are_user_errors(options, message):
    with pytest.raises(UserError, match=message):
        method_options("token-head", options)


def test_fit_dev_fits_on_the_dev_sentences_too(reading_gemma, tmp_path, monkeypatch):
    _, run = fewshot_token_head(reading_gemma, tmp_path, monkeypatch, "--option", "layers=2", "--option",
                                "fit_dev=true")
    assert run["dev"] is None and run["dev_history"] == [] and run["c"] == 0.1  # nothing left to score it on
    assert run["f1"] >= 0.9  # ACCURACY_FLOOR
