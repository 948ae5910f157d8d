"""Task kinds as objects, the one method registry and option check, and what `fewshot --help-method` shows."""
from __future__ import annotations

import pytest
from catalog_files import write_catalog
from entity_files import TWEET_FILES
from fewshot_toys import TOY_FILES

from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError
from promptlab.kinds import KINDS, kind_of
from promptlab.kinds.entities import ENTITIES
from promptlab.kinds.text import TEXT
from promptlab.methods import method_options
from cli_run import invoke


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("kinds-catalog"), {**TOY_FILES, **TWEET_FILES})


def test_a_task_file_names_its_kind_object(catalog):
    tasks = Catalog.from_options([catalog])
    assert kind_of(tasks.task("toy")) is TEXT and kind_of(tasks.task("tweetner")) is ENTITIES
    assert set(KINDS) == {"classification", "entities"}


def test_each_kind_reads_its_own_examples(catalog):
    tasks = Catalog.from_options([catalog])
    toy, tweets = tasks.task("toy"), tasks.task("tweetner")
    assert [(example["text"], example["label"]) for example in TEXT.examples(toy, "test", limit=2)] == \
        [("really great", "positive"), ("really love", "positive")]
    first = ENTITIES.examples(tweets, "train", limit=1)[0]
    assert len(first["tokens"]) == len(first["tags"]) and set(first["tags"]) - {"O"}


def test_an_unknown_kind_is_refused_where_the_task_file_says_it(tmp_path):
    root = write_catalog(tmp_path, {"tasks/t.yaml": "labels: [a, b]\nkind: entity\n"})
    with pytest.raises(UserError) as error:
        Catalog.from_options([root]).task("t")
    assert "unknown task kind 'entity'" in error.value.message and "t.yaml:2" in error.value.message
    assert "entities" in error.value.message  # did you mean


@pytest.mark.parametrize("method, option, closest", [
    ("lora", "rnak", "rank"), ("token-finetune", "max_token", "max_tokens"),
    ("entity-prompt", "negative", "negatives")])
def test_one_option_check_for_text_and_entity_methods(method, option, closest):
    with pytest.raises(UserError) as error:
        method_options(method, {option: 1})
    assert f"method '{method}' has no option '{option}'" in error.value.message and closest in error.value.message


def test_a_kind_refuses_a_method_of_the_other_kind(catalog):
    result = invoke("fewshot", "--task", "toy", "--catalog", catalog, "--method", "token-finetune", exit_code=2)
    assert "method 'token-finetune' does not apply to task 'toy' (kind classification: one label per text)" in \
        result.output


def test_help_method_shows_the_methods_defaults_without_a_task():
    lora = invoke("fewshot", "--method", "lora", "--help-method").output
    rows = {line.split()[0]: line.split()[1] for line in lora.splitlines()[2:] if line.startswith("  ")}
    assert rows["lr"] == "0.0005" and rows["rank"] == "8" and rows["batch_size"] == "16"
    assert "LoRA rank" in lora and "--train-batch-size" in lora
    tagger = invoke("fewshot", "--method", "token-finetune", "--help-method").output
    assert tagger.splitlines()[0].endswith("(entity tasks)") and lora.splitlines()[0].endswith("(text tasks)")
    rows = {line.split()[0]: line.split()[1] for line in tagger.splitlines()[2:] if line.startswith("  ")}
    assert rows["steps"] == "200" and rows["max_tokens"] == "256"
    listing = invoke("fewshot", "--help-method").output
    assert [line.split()[0] for line in listing.splitlines() if line and not line.startswith("fewshot")] == \
        list(TEXT.methods + ENTITIES.methods)
    assert "--help-method" in invoke("fewshot", "--help").output


def test_fewshot_still_needs_a_task():
    assert "Missing option '--task'" in invoke("fewshot", "--method", "lora", exit_code=2).output


def test_the_training_batch_flag_says_what_it_sizes(catalog):
    """--train-batch-size sets a method's training batches; fewshot's old --batch-size is the same flag, noted."""
    majority = ("fewshot", "--task", "toy", "--catalog", catalog, "--template", "t1", "--method", "majority")
    new = invoke(*majority, "--train-batch-size", 4, exit_code=2)
    assert "--train-batch-size does not apply to --method majority" in new.output
    old = invoke(*majority, "--batch-size", 4, exit_code=2)
    assert "--batch-size is --train-batch-size now" in old.output
    assert "--train-batch-size does not apply to --method majority" in old.output
