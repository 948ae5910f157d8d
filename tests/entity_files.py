"""A Twitter-style entity task written only as files: CoNLL data (token TAB tag, tweets split by a line
holding one tab, WNUT-16 style), with entity types that promptlab does not ship; and a few-shot run on it
that leaves trained artefacts."""
from __future__ import annotations

import json
import random

import pytest
import torch
from catalog_files import write_catalog
from click.testing import CliRunner

from promptlab.cli import main

TYPES = ("person", "geo-loc", "company")
# Capitalised entity words the tiny test tokenizers know as single tokens (conftest.TINY_WORDS), by type.
ENTITY_WORDS = {"person": ["Story", "Acting"], "geo-loc": ["World", "Science"], "company": ["Business", "Tech"]}
FILLER = "i love the movie it was very fun and good this is about my review".split()


def tweets(count: int, seed: int) -> list[list[tuple[str, str]]]:
    """Tweets of filler words with one or two entities each; a company is sometimes two words (B-, I-)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        words = [(word, "O") for word in rng.sample(FILLER, 5)]
        for _ in range(rng.choice((1, 2))):
            kind = rng.choice(TYPES)
            entity = [(rng.choice(ENTITY_WORDS[kind]), f"B-{kind}")]
            if kind == "company" and rng.random() < 0.5:
                entity.append(("News", f"I-{kind}"))
            position = rng.randrange(len(words) + 1)
            words[position:position] = entity
        rows.append(words)
    return rows


def conll(rows: list[list[tuple[str, str]]]) -> str:
    return "\t\n".join("".join(f"{token}\t{tag}\n" for token, tag in row) for row in rows)


TWEET_FILES = {
    "tasks/tweetner.yaml": ("kind: entities\nlabels: [person, geo-loc, company]\n"
                            "data: {train: data/tweets-train.conll, test: data/tweets-test.conll}\n"),
    "tasks/data/tweets-train.conll": conll(tweets(40, seed=1)),
    "tasks/data/tweets-test.conll": conll(tweets(12, seed=2)),
    "templates/tweetner/t1.jinja": "{{ sentence }} Is {{ span }} a person, a place or a company? {{ mask }}",
    "verbalizers/tweetner/default.yaml": ("labels:\n  person: you\n  geo-loc: world\n  company: business\n"
                                          "  O: \"no\"\n"),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy CPU its synchronisation costs 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """The tweetner catalog, written once per test module."""
    return write_catalog(tmp_path_factory.mktemp("tweets-catalog"), TWEET_FILES)


def fewshot_run(catalog, model, output, *arguments) -> dict:
    """`promptlab fewshot` on tweetner with `--output`: its summary (each seed's F1 and artefact in output/seed-N)."""
    result = CliRunner().invoke(main, ["fewshot", "--task", "tweetner", "--catalog", str(catalog), "--model",
                                       str(model), "--output", str(output), "--json", *map(str, arguments)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tagger_artefact(catalog, tiny_bert_dir, tmp_path_factory):
    """A token-finetune artefact of tweetner on the tiny BERT (trained enough to find entities): its seed folder."""
    output = tmp_path_factory.mktemp("ner-run")
    fewshot_run(catalog, tiny_bert_dir, output, "--method", "token-finetune", "--k", 3, "--seeds", 13,
                "--steps", 40, "--lr", 3e-3)
    return output / "seed-13"
