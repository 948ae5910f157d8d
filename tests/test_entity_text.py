"""Entity predictions on raw text: CoNLL-style tokens with offsets, spans mapped back to characters."""
from __future__ import annotations

import pytest
from catalog_files import write_catalog
from entity_files import TWEET_FILES, TYPES, one_thread, tweets  # noqa: F401 (an autouse fixture)

from promptlab.methods.artefacts import Trained, save_trained
from promptlab.catalog.catalog import Catalog
from promptlab.apply.entity_predictors import plan_predictor
from promptlab.data.tags import Span
from promptlab.data.words import entities_in_texts, tokenize
from promptlab.methods.token_finetune import TokenFinetuneOptions, TokenTagger, train_tagger
from promptlab.errors import UserError


def test_tokens_follow_conll_and_keep_their_offsets():
    text = "AL-AIN, United Arab Emirates 1996-12-06: U.S. envoy O'Neill met Acme's CEO."
    tokens = tokenize(text)
    assert [t.text for t in tokens] == ["AL-AIN", ",", "United", "Arab", "Emirates", "1996-12-06", ":", "U.S.",
                                        "envoy", "O'Neill", "met", "Acme", "'s", "CEO", "."]
    assert all(text[t.start:t.end] == t.text for t in tokens)


def test_spans_map_back_to_character_offsets():
    def predict(sentences):  # a stand-in model: every capitalised word is a LOC
        return [[(Span(i, i + 1, "LOC"), 0.5) for i, word in enumerate(tokens) if word[0].isupper()]
                for tokens in sentences]

    found = entities_in_texts(predict, ["we flew to  Rome, then Oslo.", "", "no names"])
    assert found == [[{"start": 12, "end": 16, "type": "LOC", "text": "Rome", "score": 0.5},
                      {"start": 23, "end": 27, "type": "LOC", "text": "Oslo", "score": 0.5}], [], []]


@pytest.fixture
def catalog(tmp_path):
    return Catalog.from_options([write_catalog(tmp_path / "catalog", TWEET_FILES)])


def test_a_saved_token_finetune_folder_predicts_on_raw_text(tiny_bert_dir, tmp_path, catalog):
    rows = tweets(40, seed=1)
    examples = [{"id": str(i), "tokens": [t for t, _ in r], "tags": [g for _, g in r]} for i, r in enumerate(rows)]
    tagger = TokenTagger.load(str(tiny_bert_dir), TYPES, device="cpu")
    train_tagger(tagger, examples, [], TokenFinetuneOptions(steps=60, lr=3e-3, patience=0), seed=0)
    save_trained(tmp_path / "seed-0", Trained("token-finetune", state={"types": list(TYPES)}, model=tagger.model,
                                              tokenizer=tagger.tokenizer), {"task": "tweetner"})
    plan = plan_predictor(catalog, task=None, trained=str(tmp_path / "seed-0"))  # the artefact names its task
    predictor = plan.load(device="cpu")
    (found,) = entities_in_texts(predictor.predict, ["i love Tech News and the World"])
    assert [(e["text"], e["type"]) for e in found] == [("Tech News", "company"), ("World", "geo-loc")]
    # a span's score is the mean probability of its words' tags: Tech and News are words 2 and 3
    ((_, word_scores),) = tagger.predict([["i", "love", "Tech", "News", "and", "the", "World"]])
    assert found[0]["start"] == 7 and found[0]["score"] == round((word_scores[2] + word_scores[3]) / 2, 6)
    assert predictor.info["task"] == "tweetner" and predictor.info["method"] == "token-finetune"
    with pytest.raises(UserError, match="--calibrate does not apply to a token-finetune model"):
        plan_predictor(catalog, task="tweetner", trained=str(tmp_path / "seed-0"), calibrate="none")


@pytest.mark.parametrize("task, message", [
    ("sentiment", "trained for task 'sentiment', not 'tweetner'"),
    ("tweetner", "trained with 'majority', which does not recognise entities"),
])
def test_an_artefact_of_another_task_or_method_is_refused(tmp_path, catalog, task, message):
    save_trained(tmp_path / "seed-0", Trained("majority", state={"label": "positive"}), {"task": task})
    with pytest.raises(UserError, match=message):
        plan_predictor(catalog, task="tweetner", trained=str(tmp_path / "seed-0"))
