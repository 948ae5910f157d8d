import pytest
from catalog_files import NLI_FILES, write_catalog

from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError
from promptlab.catalog.task import load_task
from promptlab.catalog.verbalizer import load_verbalizer
from promptlab.kinds import task_examples

LABELS = ["negative", "positive"]


def verbalizer_from(tmp_path, text):
    path = tmp_path / "v.yaml"
    path.write_text(text)
    return load_verbalizer(path, task="toy", labels=LABELS)


def test_verbalizer_words_in_task_order(tmp_path):
    verbalizer = verbalizer_from(tmp_path, "labels:\n  positive: [great, very good]\n  negative: terrible\n")
    assert verbalizer.words == {"negative": ("terrible",), "positive": ("great", "very good")}


def test_words_from_label_names_with_overrides(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("words_from: label_names\nlabels:\n  Refund_not_showing_up: [refund not showing up]\n")
    labels = ["card_arrival", "Refund_not_showing_up", "top_up__limits", "yes"]
    verbalizer = load_verbalizer(path, task="intents", labels=labels)
    assert verbalizer.words == {"card_arrival": ("card arrival",), "Refund_not_showing_up": ("refund not showing up",),
                                "top_up__limits": ("top up limits",), "yes": ("yes",)}


@pytest.mark.parametrize("text, message, line", [
    ("words_from: names\n", "words_from: 'names' is not one of: label_names", 1),
    ("words_from: label_names\nlabels:\n  neutral: [meh]\n", "label 'neutral' is not a label", 3),
    ("labels:\n  negative: [bad]\n  postive: [good]\n", "label 'postive' is not a label", 3),
    ("labels:\n  negative: [bad]\n", "no words for label positive", 2),
    ("labels:\n  negative: []\n  positive: [good]\n", "empty word list", 2),
    ("labels:\n  negative: [bad, '']\n  positive: [good]\n", "empty word", 2),
    ("labels:\n  negative: [bad]\n  positive: [good]\n  negative: [awful]\n", "duplicate key 'negative'", 4),
    ("labels:\n  negative: no\n  positive: yes\n", "'no' reads as a YAML boolean", 2),
    ("labels:\n  negative: [bad]\n  positive: [good, 'bad']\n", "given for both", None),
    ("label:\n  negative: [bad]\n", "unknown key 'label'", 1),
    ("labels:\n  negative: [bad\n", "invalid YAML", 3),
])
def test_verbalizer_errors(tmp_path, text, message, line):
    with pytest.raises(UserError, match=message) as caught:
        verbalizer_from(tmp_path, text)
    assert caught.value.line == line
    assert str(tmp_path / "v.yaml") in caught.value.message


def test_true_as_a_word_must_be_quoted(tmp_path):
    with pytest.raises(UserError, match="boolean true") as caught:
        verbalizer_from(tmp_path, "labels:\n  negative: [bad]\n  positive: [true]\n")
    assert 'quote it: "true"' in caught.value.fix


def test_misspelt_label_gets_a_suggestion(tmp_path):
    with pytest.raises(UserError) as caught:
        verbalizer_from(tmp_path, "labels:\n  negative: [bad]\n  postive: [good]\n")
    assert "did you mean 'positive'?" in caught.value.fix


@pytest.mark.parametrize("text, message", [
    ("labels: [a]\n", "at least two"),
    ("labels: [a, a]\n", "listed twice"),
    ("labels: [a, b]\ndata: {tset: x.jsonl}\n", "unknown key 'tset'"),
    ("labels: [a, b]\nsplits: {}\n", "unknown key 'splits'"),
    ("data: {test: x.jsonl}\n", "missing key 'labels'"),
    ("labels: [off, on]\n", "boolean"),
])
def test_task_errors(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_task(path)


def test_later_catalog_overrides_earlier_by_name(tmp_path, monkeypatch):
    first = write_catalog(tmp_path / "a", NLI_FILES)
    second = write_catalog(tmp_path / "b", {"templates/nli/t1.jinja": "{{ hypothesis }} {{ mask }}",
                                            "templates/nli/t2.jinja": "{{ premise }} {{ mask }}"})
    monkeypatch.setenv("PROMPTLAB_PATH", str(first))
    catalog = Catalog.from_options([second])
    assert catalog.template("nli", "t1").fields == {"hypothesis"}
    assert set(catalog.template_files("nli")) == {"t1", "t2"}
    assert "sentiment" in catalog.task_names()  # the built-in catalog stays first


def test_relative_data_paths_resolve_against_the_task_file(tmp_path, monkeypatch):
    root = write_catalog(tmp_path / "cat", NLI_FILES)
    monkeypatch.chdir(tmp_path)
    examples = task_examples(Catalog.from_options([root]).task("nli"), "test")
    assert [e["label"] for e in examples] == ["entailment", "contradiction", "neutral", "contradiction"]


def test_default_verbalizer_then_only_one_then_ambiguous(tmp_path):
    root = write_catalog(tmp_path, NLI_FILES)
    catalog = Catalog.from_options([root])
    task = catalog.task("nli")
    assert catalog.verbalizer(task).name == "default"
    (root / "verbalizers/nli/default.yaml").rename(root / "verbalizers/nli/words.yaml")
    assert catalog.verbalizer(task).name == "words"
    (root / "verbalizers/nli/other.yaml").write_text((root / "verbalizers/nli/words.yaml").read_text())
    with pytest.raises(UserError, match="none is named 'default'"):
        catalog.verbalizer(task)


@pytest.mark.parametrize("lookup, message", [
    (lambda c: c.task("sentimnet"), "did you mean 'sentiment'"),
    (lambda c: c.template("sentiment", "t9"), "unknown template"),
    (lambda c: c.verbalizer(c.task("sentiment"), "defualt"), "did you mean 'default'"),
])
def test_unknown_names(lookup, message):
    with pytest.raises(UserError) as caught:
        lookup(Catalog.from_options())
    assert message in caught.value.message


def test_missing_catalog_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Catalog.from_options([tmp_path / "nope"])
