"""Shared test fixtures: tiny random language models, saved like real checkpoints.

Each `tiny_*_dir` fixture is a folder holding a 2-layer, 32-wide model (random, seeded) and its
tokenizer, built in-process so tests need no network. Their vocabularies make every word in
TINY_WORDS a single token (with and without a leading space, lower case and Capitalised) and every
word in MULTI_TOKEN_WORDS several tokens, as real label words and rare words behave.

    tiny_bert_dir     BertForMaskedLM,    WordPiece, lower-cased, [MASK], [CLS] ... [SEP]
    tiny_roberta_dir  RobertaForMaskedLM, byte-level BPE (' great' -> 'Ġgreat'), <mask>, <s> ... </s>
    tiny_gpt2_dir     GPT2LMHeadModel,    byte-level BPE, no special tokens added, no pad token
    tiny_llama_dir    LlamaForCausalLM,   SentencePiece-style BPE ('▁great'), prepends <s>, no pad token

`build_tiny_model(arch, folder, seed=0)` builds the same thing anywhere (another seed gives other
weights, same tokenizer).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

TINY_WORDS = (
    "great terrible good bad movie film it was the a an is this that and not very really i you "
    "love hate awful excellent fine boring fun story acting plot positive negative neutral yes no "
    "true false maybe sports business politics tech world news science health about topic review "
    "sentiment question answer label text overall all in of to my me"
).split()
MULTI_TOKEN_WORDS = ("unwatchable", "masterpiece", "overrated", "disappointing")
PUNCTUATION = list(".,!?:;'\"-()")
MAX_POSITIONS = 128
SMALL = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "offline_models: loads the real models that ship in pip packages "
                                       "(skipped when the packages are missing)")


# ---------------------------------------------------------------- tokenizers

def _cased_words() -> list[str]:
    return list(TINY_WORDS) + [word.capitalize() for word in TINY_WORDS]


def _bpe_pieces(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """What BPE makes of `word`: repeatedly merge the adjacent pair with the best (lowest) rank."""
    pieces = list(word)
    while len(pieces) > 1:
        rank, index = min((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(pieces, pieces[1:])))
        if rank == len(ranks):
            break
        pieces[index:index + 2] = [pieces[index] + pieces[index + 1]]
    return pieces


def _single_token_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges that turn each word into one token.

    Each word's missing merges go after all earlier ones, so they only act once every earlier merge
    is done, when every earlier word is already a single token: no word undoes another.
    """
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        pieces = _bpe_pieces(word, ranks)
        while len(pieces) > 1:
            ranks.setdefault((pieces[0], pieces[1]), len(ranks))
            pieces[:2] = [pieces[0] + pieces[1]]
    return list(ranks)


def _bpe_tokenizer(specials: list[str], alphabet: list[str], space: str):
    """A BPE over `alphabet` whose TINY_WORDS are single tokens, after `space` or not."""
    from tokenizers import Tokenizer, models

    words = _cased_words()
    merges = _single_token_merges([space + word for word in words] + words)
    vocab: dict[str, int] = {}
    for token in specials + alphabet + [left + right for left, right in merges]:
        vocab.setdefault(token, len(vocab))
    unk = "<unk>" if "<unk>" in specials else None
    return Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=space == "▁"))


def _byte_level_tokenizer(specials: list[str]):
    from tokenizers import decoders, pre_tokenizers

    tokenizer = _bpe_tokenizer(specials, sorted(pre_tokenizers.ByteLevel.alphabet()), "Ġ")
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _roberta_tokenizer():
    from tokenizers import AddedToken, processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = _byte_level_tokenizer(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=MAX_POSITIONS,
        bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token=AddedToken("<mask>", lstrip=True, special=True))


def _gpt2_tokenizer():
    from transformers import PreTrainedTokenizerFast

    tokenizer = _byte_level_tokenizer(["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=MAX_POSITIONS,
                                   bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def _llama_tokenizer():
    from tokenizers import decoders, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    byte_tokens = [f"<0x{value:02X}>" for value in range(256)]  # byte fallback, as in Llama
    alphabet = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789▁") | set(PUNCTUATION))
    tokenizer = _bpe_tokenizer(["<unk>", "<s>", "</s>"] + byte_tokens, alphabet, "▁")
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=MAX_POSITIONS,
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def _bert_tokenizer():
    from transformers import BertTokenizerFast

    letters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    pieces = ["un", "##watch", "##able", "master", "##piece", "over", "##rated", "dis", "##appoint", "##ing"]
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + PUNCTUATION + letters
             + [f"##{letter}" for letter in letters] + list(TINY_WORDS) + pieces)
    ids = {token: index for index, token in enumerate(dict.fromkeys(vocab))}
    return BertTokenizerFast(vocab=ids, model_max_length=MAX_POSITIONS)


# ---------------------------------------------------------------- models

def _bert_model(vocab_size: int):
    from transformers import BertConfig, BertForMaskedLM

    return BertForMaskedLM(BertConfig(
        vocab_size=vocab_size, hidden_size=SMALL["hidden"], num_hidden_layers=SMALL["layers"],
        num_attention_heads=SMALL["heads"], intermediate_size=SMALL["intermediate"],
        max_position_embeddings=MAX_POSITIONS))


def _roberta_model(vocab_size: int):
    from transformers import RobertaConfig, RobertaForMaskedLM

    return RobertaForMaskedLM(RobertaConfig(
        vocab_size=vocab_size, hidden_size=SMALL["hidden"], num_hidden_layers=SMALL["layers"],
        num_attention_heads=SMALL["heads"], intermediate_size=SMALL["intermediate"],
        max_position_embeddings=MAX_POSITIONS + 2,  # RoBERTa positions start after the pad index
        pad_token_id=1, bos_token_id=0, eos_token_id=2))


def _gpt2_model(vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(
        vocab_size=vocab_size, n_embd=SMALL["hidden"], n_layer=SMALL["layers"], n_head=SMALL["heads"],
        n_inner=SMALL["intermediate"], n_positions=MAX_POSITIONS, bos_token_id=0, eos_token_id=0))


def _llama_model(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab_size, hidden_size=SMALL["hidden"], num_hidden_layers=SMALL["layers"],
        num_attention_heads=SMALL["heads"], num_key_value_heads=1, intermediate_size=SMALL["intermediate"],
        max_position_embeddings=MAX_POSITIONS, bos_token_id=1, eos_token_id=2))


_BUILDERS = {
    "bert": (_bert_model, _bert_tokenizer),
    "roberta": (_roberta_model, _roberta_tokenizer),
    "gpt2": (_gpt2_model, _gpt2_tokenizer),
    "llama": (_llama_model, _llama_tokenizer),
}


def build_tiny_model(arch: str, folder: Path, seed: int = 0) -> Path:
    """Save a tiny random `arch` model ('bert', 'roberta', 'gpt2', 'llama') and its tokenizer to folder."""
    make_model, make_tokenizer = _BUILDERS[arch]
    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    make_model(len(tokenizer)).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session", name="build_tiny_model")
def build_tiny_model_fixture() -> Callable[..., Path]:
    return build_tiny_model


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("bert", tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("roberta", tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("gpt2", tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def toy_catalog_dir(tmp_path_factory) -> Path:
    """A catalog folder holding fewshot_toys.TOY_FILES: a separable two-label toy task."""
    from catalog_files import write_catalog
    from fewshot_toys import TOY_FILES
    return write_catalog(tmp_path_factory.mktemp("toy-catalog"), TOY_FILES)


@pytest.fixture(scope="module")
def sensitive_gpt2_dir(tiny_gpt2_dir, tmp_path_factory) -> Path:
    """The tiny GPT-2 with larger weights, so a prompt or head can learn the toy task."""
    from fewshot_toys import sensitive_model
    return sensitive_model(tiny_gpt2_dir, tmp_path_factory.mktemp("sensitive-gpt2"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT saved as a sentence-transformers folder (mean pooling), so every load is the same model."""
    from promptlab.backends.sentence_encoders import load_encoder
    folder = tmp_path_factory.mktemp("tiny-encoder")
    load_encoder(str(tiny_bert_dir), device="cpu").save(folder)
    return folder
