"""token-finetune on Chinese characters, end to end on a tiny gemma3 whose vocabulary holds the characters used:
`fewshot` trains it on an entity task written as files, and `predict --trained` on raw Chinese text (no spaces)
answers the spans with character offsets into that text, as the run tagged its test sentences. `echo` lets a causal
tagger see the words after each word; `train_layers` leaves the embeddings and the lower layers as they were."""
from __future__ import annotations

import json
import random

import pytest
import torch
from catalog_files import write_catalog
from click.testing import CliRunner
from entity_files import one_thread  # noqa: F401 (fixture)

from promptlab.cli import main
from promptlab.errors import UserError
from promptlab.methods.token_finetune import TokenFinetuneOptions, TokenTagger, train_tagger

PEOPLE, PLACES = ["王明", "李华", "张伟"], ["北京", "上海", "广州"]
FILLER = ["今天", "昨天", "去了", "在", "工作", "住", "见", "。", "，", "和"]


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    """A person and a place among filler characters: (character, IOB2 tag) pairs."""
    def entity(words, kind):
        word = rng.choice(words)
        return [(word[0], f"B-{kind}"), *((character, f"I-{kind}") for character in word[1:])]

    def filler():
        return [(character, "O") for character in rng.choice(FILLER)]

    return [*filler(), *entity(PEOPLE, "PER"), *filler(), *entity(PLACES, "LOC"), *filler()]


def jsonl(count: int, seed: int) -> str:
    rng = random.Random(seed)
    rows = [sentence(rng) for _ in range(count)]
    return "".join(json.dumps({"tokens": [c for c, _ in row], "tags": [t for _, t in row]}, ensure_ascii=False) + "\n"
                   for row in rows)


CATALOG = {
    "tasks/people-places-zh.yaml": ("kind: entities\nlabels: [PER, LOC]\n"
                                    "data: {train: data/zh-train.jsonl, test: data/zh-test.jsonl}\n"),
    "tasks/data/zh-train.jsonl": jsonl(30, seed=1),
    "tasks/data/zh-test.jsonl": jsonl(8, seed=2),
}


@pytest.fixture(scope="module")
def tiny_chinese_gemma(tmp_path_factory):
    """A tiny random Gemma 3 (three layers) with a tokenizer that reads each character used here as one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-chinese-gemma")
    characters = sorted(set("".join(PEOPLE + PLACES + FILLER)))
    vocab = {token: index for index, token in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *characters])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # token-finetune hands it one character per word
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                       max_position_embeddings=128, pad_token_id=0, bos_token_id=1,
                                       eos_token_id=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def invoke(*args, exit_code=0):
    result = CliRunner().invoke(main, list(map(str, args)))
    assert result.exit_code == exit_code, result.output
    return result


def predict_test_texts(tmp_path, root) -> tuple[list[str], list[dict], list[list[dict]]]:
    """`predict --trained` with the run's seed-13 artefact on the test sentences as raw text (and one new sentence
    last): the texts, the run's own spans.jsonl rows, and predict's entities per line."""
    test = [json.loads(line) for line in CATALOG["tasks/data/zh-test.jsonl"].splitlines()]
    tagged = [json.loads(line) for line in (tmp_path / "run" / "seed-13" / "spans.jsonl").read_text().splitlines()]
    texts = ["".join(row["tokens"]) for row in test]
    (tmp_path / "news.txt").write_text("".join(text + "\n" for text in texts) + "昨天王明去了广州。\n", encoding="utf-8")
    invoke("predict", "--trained", tmp_path / "run" / "seed-13", "--catalog", root, "--input", tmp_path / "news.txt",
           "--output", tmp_path / "entities.jsonl")
    answers = [json.loads(line)["entities"] for line in (tmp_path / "entities.jsonl").read_text().splitlines()]
    return texts, tagged, answers


def test_predict_on_raw_chinese_text_answers_character_spans(tiny_chinese_gemma, tmp_path):
    root = write_catalog(tmp_path / "catalog", CATALOG)
    invoke("fewshot", "--catalog", root, "--task", "people-places-zh", "--method", "token-finetune", "--model",
           tiny_chinese_gemma, "--k", 10, "--seeds", 13, "--steps", 100, "--lr", 0.01, "--option", "echo=true",
           "--output", tmp_path / "run")
    texts, tagged, answers = predict_test_texts(tmp_path, root)
    # one character per token: the test run's token offsets are the character offsets predict answers
    assert [[(e["start"], e["end"], e["type"]) for e in entities] for entities in answers[:-1]] == \
        [[(s["start"], s["end"], s["type"]) for s in row["spans"]] for row in tagged]
    assert all(e["text"] == text[e["start"]:e["end"]] for text, entities in zip(texts, answers) for e in entities)
    run = json.loads((tmp_path / "run" / "fewshot.json").read_text())["per_seed"][0]
    assert run["f1"] >= 0.6  # ACCURACY_FLOOR: it learned the names (untrained head: F1 about 0.04)
    found = {(e["start"], e["end"], e["type"], e["text"]) for e in answers[-1]}  # a new sentence of known names
    assert (6, 8, "LOC", "广州") in found and all(e["text"] == "昨天王明去了广州。"[e["start"]:e["end"]] for e in answers[-1])


def test_train_layers_trains_the_top_layers_and_the_head_only(tiny_chinese_gemma):
    tagger = TokenTagger.load(str(tiny_chinese_gemma), ["PER", "LOC"], device="cpu", seed=0)
    before = {name: tensor.clone() for name, tensor in tagger.model.state_dict().items()}
    train = [json.loads(line) for line in CATALOG["tasks/data/zh-train.jsonl"].splitlines()][:8]
    train_tagger(tagger, train, [], TokenFinetuneOptions(steps=5, lr=1e-2, batch_size=4, eval_every=5,
                                                         train_layers=1), seed=0)
    changed = {name for name, tensor in tagger.model.state_dict().items() if not torch.equal(tensor, before[name])}
    assert changed and all(name.startswith(("model.layers.2.", "score.")) for name in changed)
    assert "score.weight" in changed and any(name.startswith("model.layers.2.") for name in changed)
    with pytest.raises(UserError, match="the model has 3 transformer layers"):
        train_tagger(tagger, train, [], TokenFinetuneOptions(steps=1, train_layers=4), seed=0)


def test_echo_lets_a_causal_tagger_see_the_words_after_each_word(tiny_chinese_gemma):
    plain = TokenTagger.load(str(tiny_chinese_gemma), ["PER", "LOC"], device="cpu", seed=0)
    echo = TokenTagger(plain.model, plain.tokenizer, plain.types, plain.device, echo=True)
    one, other = list("王明去了北京。"), list("王明去了上海。")  # the same first four characters
    (_, plain_one), (_, plain_other) = plain.predict([one, other])
    (_, echo_one), (_, echo_other) = echo.predict([one, other])
    assert plain_one[:4] == pytest.approx(plain_other[:4], abs=1e-6)  # causal: blind to what follows
    assert echo_one[:4] != pytest.approx(echo_other[:4], abs=1e-6)
    # a window of 12 sub-tokens holds <bos> and five characters read twice; a longer sentence is still tagged whole
    windowed = TokenTagger(plain.model, plain.tokenizer, plain.types, plain.device, max_tokens=12, echo=True)
    long = one * 4
    tags, scores = windowed.predict([long])[0]
    assert len(tags) == len(long) and min(scores) > 0  # a word no window tagged would keep probability 0
    assert windowed.predict([one[:5]]) == echo.predict([one[:5]])  # within one window: as in one pass
