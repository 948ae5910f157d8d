"""token-finetune on inputs longer than its window: overlapping windows tag every word (none is left a silent O),
and an input within the window is tagged exactly as in one pass."""
from __future__ import annotations

import pytest
import torch

from promptlab.methods.token_finetune import TokenTagger

TYPES = ["person", "company"]
WORDS = "i love the movie it was very fun and good this is about my review World Tech News".split()


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def taggers(request, build_tiny_model, tmp_path_factory):
    """The same tiny tagger with a 12 sub-token window and with a window long enough for every input here."""
    folder = build_tiny_model(request.param, tmp_path_factory.mktemp(f"tiny-{request.param}"))
    small = TokenTagger.load(str(folder), TYPES, device="cpu", seed=0, max_tokens=12)
    return small, TokenTagger(small.model, small.tokenizer, TYPES, small.device, max_tokens=512)


def test_inputs_within_the_window_are_tagged_as_in_one_pass(taggers):
    small, whole = taggers
    sentences = [WORDS[:4], WORDS[-3:], WORDS[5:9]]
    assert all(len(small.tokenizer(words, is_split_into_words=True)["input_ids"]) <= 12 for words in sentences)
    assert small.predict(sentences) == whole.predict(sentences)


def test_no_word_past_the_window_is_left_untagged(taggers):
    small, _ = taggers
    head = small.model.classifier if hasattr(small.model, "classifier") else small.model.score
    long = WORDS * 4  # 72 words, six windows' worth
    with torch.no_grad():
        saved = head.bias.clone()
        head.bias.zero_()
        head.bias[small.tags.index("B-company")] = 50.0  # every word a company, whatever its context
        try:
            tags, scores = small.predict([long])[0]
        finally:
            head.bias.copy_(saved)
    assert len(tags) == len(long) and set(tags) == {"B-company"}
    assert min(scores) > 0.99


def test_a_causal_model_tags_the_first_words_of_a_long_input_as_the_one_pass_does(taggers):
    small, whole = taggers
    if small.model.config.model_type != "gpt2":
        pytest.skip("an encoder's first words see the words after them, which differ between the two")
    long = WORDS * 4
    windowed, one_pass = small.predict([long])[0], whole.predict([long])[0]
    # a causal word sees only the words before it; the first words are only in the first window, which starts
    # where the one pass starts, so their tags and scores are the one pass's
    assert windowed[0][:6] == one_pass[0][:6]
    assert windowed[1][:6] == pytest.approx(one_pass[1][:6], abs=1e-6)
    assert windowed[1][6:] != pytest.approx(one_pass[1][6:], abs=1e-6)  # later words: another context
