"""Entity k-shot sampling, seqeval metrics, candidate spans and decoding, token-finetune, and the CLI on a task
written only as files (tweets with entity types promptlab does not ship), all on tiny models."""
from __future__ import annotations

import json
import statistics
from collections import Counter

import pytest
import torch
from click.testing import CliRunner
from cli_run import invoke
from entity_files import TYPES, catalog, one_thread, tweets  # noqa: F401 (fixtures)
from span_counts import conll_f1

from promptlab.cli import main
from promptlab.metrics.entities import entity_metrics
from promptlab.methods.entity_candidates import Candidate, candidate_spans, decode
from promptlab.data.entity_sampling import sample_entity_kshot
from promptlab.data.tags import Span, spans_of
from promptlab.methods.token_finetune import TokenFinetuneOptions, TokenTagger, train_tagger
from promptlab.errors import UserError


def sentences(rows):
    return [{"id": f"s{i}", "tokens": [t for t, _ in row], "tags": [g for _, g in row]} for i, row in enumerate(rows)]


def mentions(examples):
    return Counter(span.type for example in examples for span in spans_of(example["tags"]))


def test_greedy_sampling_gives_every_type_k_mentions_in_minimal_disjoint_sets():
    pool = sentences(tweets(60, seed=3))
    split = sample_entity_kshot(pool, TYPES, 3, seed=13)
    for part in (split.train, split.dev):
        counts = mentions(part)
        assert all(counts[t] >= 3 for t in TYPES)
        for example in part:  # minimal: no sentence could be left out
            without = counts - mentions([example])
            assert any(without[t] < 3 for t in TYPES)
    assert not set(split.ids["train"]) & set(split.ids["dev"])
    assert sample_entity_kshot(list(reversed(pool)), TYPES, 3, seed=13).ids == split.ids
    assert sample_entity_kshot(pool, TYPES, 3, seed=21).ids != split.ids


def test_sampling_refuses_a_k_the_pool_cannot_give():
    with pytest.raises(UserError, match="needs 200"):
        sample_entity_kshot(sentences(tweets(20, seed=3)), TYPES, 100, seed=1)


def test_metrics_are_strict_entity_level_matches():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-LOC"]]
    # Counted by hand: gold spans {PER 0-2, LOC 3-4, ORG 0-1}; predicted {PER 0-1, LOC 3-4, ORG 0-1, LOC 1-2}.
    metrics = entity_metrics(gold, predicted, ["PER", "LOC", "ORG"])
    assert metrics["precision"] == pytest.approx(2 / 4) and metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert metrics["per_type"]["PER"]["f1"] == 0 and metrics["per_type"]["ORG"]["f1"] == 1


def test_candidates_are_capitalised_ngrams_up_to_the_length():
    tokens = ["The", "Bank", "of", "England", "said", "on", "Friday", "."]
    found = {" ".join(tokens[s.start:s.end]) for s in candidate_spans(tokens, max_span=3)}
    assert found == {"Bank", "England", "Friday", "Bank of England"}
    assert len(candidate_spans(tokens, max_span=2, keep="all")) == 8 + 7


def test_decoding_keeps_the_most_probable_spans_that_do_not_overlap():
    answers = ["PER", "LOC", "O"]
    candidates = [Candidate(0, Span(0, 2, "")), Candidate(0, Span(1, 2, "")), Candidate(0, Span(2, 3, "")),
                  Candidate(0, Span(3, 4, ""))]
    probabilities = torch.tensor([[0.6, 0.1, 0.3], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.1, 0.5, 0.4]])
    (chosen,) = decode(candidates, probabilities.log(), answers, [4])
    assert [(span, round(score, 2)) for span, score in chosen] == [(Span(1, 2, "LOC"), 0.8), (Span(3, 4, "LOC"), 0.5)]


def test_token_finetune_learns_entity_words_on_a_tiny_bert(tiny_bert_dir):
    train, test = sentences(tweets(40, seed=1)), sentences(tweets(12, seed=2))
    tagger = TokenTagger.load(str(tiny_bert_dir), TYPES, device="cpu", seed=0)
    inputs, firsts, labels = tagger.encode([train[0]["tokens"]], [train[0]["tags"]])
    # labels on first sub-tokens only: as many as the words, -100 elsewhere ([CLS], [SEP])
    assert int((labels != -100).sum()) == len(train[0]["tokens"]) and labels[0, 0] == -100
    options = TokenFinetuneOptions(steps=60, lr=3e-3, batch_size=8, eval_every=20, patience=0)
    training = train_tagger(tagger, train[:30], train[30:], options, seed=0)
    predicted = [tags for tags, _ in tagger.predict([e["tokens"] for e in test])]
    assert entity_metrics([e["tags"] for e in test], predicted, TYPES)["f1"] >= 0.8
    assert training.losses[-1] < training.losses[0] / 2
    assert training.best_step == max(training.dev_history, key=lambda item: item[1])[0]


# ---------------------------------------------------------------- the CLI on a task written only as files


def test_fewshot_token_finetune_on_a_new_entity_task(catalog, tiny_bert_dir, tmp_path):
    result = invoke("fewshot", "--task", "tweetner", "--catalog", catalog, "--method", "token-finetune",
                    "--model", tiny_bert_dir, "--k", 3, "--seeds", "13,21", "--steps", 40, "--lr", 3e-3,
                    "--output", tmp_path, "--json")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    f1s = [conll_f1(tmp_path / f"seed-{seed}/predictions.conll") for seed in (13, 21)]
    assert [run["f1"] for run in summary["per_seed"]] == pytest.approx(f1s)
    assert summary["f1_mean"] >= 0.5 and summary["f1_std"] == pytest.approx(statistics.stdev(f1s))
    assert summary["per_seed"][0]["sample"]["train_ids"] != summary["per_seed"][1]["sample"]["train_ids"]
    conll_lines = (tmp_path / "seed-13/predictions.conll").read_text().split("\n")
    assert len(conll_lines[0].split("\t")) == 3  # token, gold, predicted
    spans = [json.loads(line) for line in (tmp_path / "seed-13/spans.jsonl").read_text().splitlines()]
    first = next(row["spans"][0] for row in spans if row["spans"])
    assert len(spans) == 12 and {"start", "end", "type", "text", "score"} <= set(first)
    assert (tmp_path / "seed-13/trained.json").is_file() and (tmp_path / "seed-13/model/model.safetensors").is_file()
    # the trained model answers raw text with character spans
    (tmp_path / "texts.jsonl").write_text('{"text": "i love World and Tech News", "n": 1}\n{"text": "no names"}\n')
    invoke("predict", "--task", "tweetner", "--catalog", catalog, "--trained", tmp_path / "seed-13",
           "--input", tmp_path / "texts.jsonl", "--output", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["text"] for row in rows] == ["i love World and Tech News", "no names"] and rows[0]["n"] == 1
    for row in rows:
        assert all(row["text"][e["start"]:e["end"]] == e["text"] and e["type"] in TYPES for e in row["entities"])


def test_entity_prompt_zero_and_few_shot_on_a_new_entity_task(catalog, tiny_gpt2_dir, tmp_path):
    zero = invoke("zeroshot", "--task", "tweetner", "--catalog", catalog, "--template", "t1",
                  "--model", tiny_gpt2_dir, "--json", "--output", tmp_path / "zero")
    assert json.loads(zero.stdout.strip().splitlines()[-1])["f1"] == pytest.approx(
        conll_f1(tmp_path / "zero/predictions.conll"))
    few = invoke("fewshot", "--task", "tweetner", "--catalog", catalog, "--method", "entity-prompt",
                 "--model", tiny_gpt2_dir, "--k", 2, "--seeds", 13, "--steps", 3, "--output", tmp_path, "--json")
    run = json.loads(few.stdout.strip().splitlines()[-1])["per_seed"][0]
    assert run["train_steps"] == 3 and run["dev_metric"] == "candidate_accuracy"
    assert run["f1"] == pytest.approx(conll_f1(tmp_path / "seed-13/predictions.conll"))
    saved = json.loads((tmp_path / "seed-13/trained.json").read_text())
    assert saved["method"] == "entity-prompt" and saved["tensors"]["prompt_embeddings"][0] == 8


def test_predict_without_a_trained_model_runs_entity_prompt_zero_shot(catalog, tiny_gpt2_dir):
    result = CliRunner().invoke(main, ["predict", "--task", "tweetner", "--catalog", str(catalog), "--model",
                                       str(tiny_gpt2_dir), "--input", "-", "--output", "-"],
                                input="i love World and Tech News\nthe movie was fun\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["text"] for row in rows] == ["i love World and Tech News", "the movie was fun"]
    assert rows[1]["entities"] == []  # no capitalised candidate, nothing to type


def test_templates_render_shows_the_prompts_of_candidate_spans(catalog):
    result = invoke("templates", "render", "--task", "tweetner", "--catalog", catalog, "--template", "t1", "-n", 2)
    first = result.output.split("--- example ")[1]  # the first candidate span of the first tweet
    assert first.startswith("0:") and "(gold: " in first and " a person, a place or a company? you'" in first


@pytest.mark.parametrize("args, message", [
    (["--method", "softprompt"], "method 'softprompt' does not apply to task 'tweetner'"),
    (["--method", "token-finetune", "--prompt-length", 4], "--prompt-length does not apply"),
    (["--method", "token-finetune", "--k", 50], "k=50 needs 100"),
    (["--method", "entity-prompt", "--option", "max_spam=4"], "method 'entity-prompt' has no option 'max_spam'"),
    (["--method", "token-finetune", "--seeds", "1,1"], "--seeds repeats a seed"),
])
def test_fewshot_mistakes_on_entity_tasks(catalog, tiny_bert_dir, args, message):
    result = invoke("fewshot", "--task", "tweetner", "--catalog", catalog, "--model", tiny_bert_dir, *args,
                    exit_code=2)
    assert message in result.output and "Traceback" not in result.output
