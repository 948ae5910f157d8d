"""`promptlab verbalizers search`: LM-BFF's automatic label words, on tiny models.

The reference computations here tokenize and run the model themselves; they do not call the search.
The known-answer case uses an "echo" GPT-2: its blocks add nothing to the residual stream and its
tied embeddings are large, so the next token it predicts is the last token it read. On a task whose
positive texts end in "great" and negative ones in "terrible", the right label words are known.
"""
import json
import re

import pytest
import torch
from catalog_files import write_catalog
from click.testing import CliRunner
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from promptlab.methods import verbalizer_search as vs
from promptlab.backends import make_backend
from promptlab.cli import main
from promptlab.backends.models import load_model
from promptlab.data.overlap import train_pool_without_test_texts
from promptlab.data.sampling import sample_kshot
from promptlab.catalog.template import parse_template
from promptlab.catalog.verbalizer import load_verbalizer
from promptlab.kinds import task_examples

PREFIXES = ["the movie was", "this film is", "i think it was", "overall it was", "the plot is", "the acting was",
            "my review is", "the story was", "all in all", "this is", "it is", "you love it or"]


def _rows(label_words: dict, prefixes: list[str], start: int) -> str:
    rows = [(f"{prefix} {word}", label) for prefix in prefixes for label, word in label_words.items()]
    return "".join(json.dumps({"id": f"e{start + i:03d}", "text": text, "label": label}) + "\n"
                   for i, (text, label) in enumerate(rows))


ECHO_WORDS = {"negative": "terrible", "positive": "great"}
ECHO_FILES = {
    "tasks/echo.yaml": ("template: t1\nlabels: [negative, positive]\n"
                        "data: {train: data/echo-train.jsonl, test: data/echo-test.jsonl}\n"),
    "templates/echo/t1.jinja": "{{ text }} {{ mask }}",
    "templates/echo/t2.jinja": "{{ text }} it was {{ mask }}.",
    "verbalizers/echo/default.yaml": "labels:\n  negative: [bad]\n  positive: [good]\n",
    "tasks/data/echo-train.jsonl": _rows(ECHO_WORDS, PREFIXES[:10], 0),  # 10 per class
    "tasks/data/echo-test.jsonl": _rows(ECHO_WORDS, ["what a", "so", "really", "not"], 500),
}


@pytest.fixture(scope="module")
def echo_catalog(tmp_path_factory):
    return write_catalog(tmp_path_factory.mktemp("echo-catalog"), ECHO_FILES)


@pytest.fixture(scope="module")
def echo_gpt2_dir(tiny_gpt2_dir, tmp_path_factory):
    """The tiny GPT-2 made to predict the token it last read (see the module docstring)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for block in model.transformer.h:
            for projection in (block.attn.c_proj, block.mlp.c_proj):
                projection.weight.zero_()
                projection.bias.zero_()
        model.transformer.wpe.weight.zero_()
        model.transformer.wte.weight.normal_(0, 1.0)  # tied with the LM head
    target = tmp_path_factory.mktemp("echo-gpt2")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(tiny_gpt2_dir).save_pretrained(target)
    return target


def invoke(*args, code=0):
    result = CliRunner().invoke(main, list(map(str, args)))
    assert result.exit_code == code, result.output
    return result


def last_json(result) -> dict:
    return json.loads(result.output.strip().splitlines()[-1])


def split_of(catalog, task, k, seed):
    """fewshot's draw, made here from its parts: the train pool without test texts, sample_kshot."""
    from promptlab.catalog.catalog import Catalog
    loaded = Catalog.from_options([catalog]).task(task)
    pool = train_pool_without_test_texts(task_examples(loaded, "train"), task_examples(loaded, "test"), where=loaded.path)
    return sample_kshot(pool, loaded.labels, k, seed)


# ---------------------------------------------------------------- (a) the vocabulary log-probs at the slot

def _reference_logprobs(folder, before: str, after: str) -> torch.Tensor:
    """log p(vocabulary | slot) for one prompt: the plain tokenizer and one unpadded forward."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    context = before.rstrip()  # the whitespace before the slot belongs to the word
    if tokenizer.mask_token is None:  # causal: the next token after the context
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        ids = tokenizer(context, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return model(input_ids=ids).logits[0, -1].log_softmax(-1)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    ids = tokenizer(context + " " + tokenizer.mask_token + after, return_tensors="pt")["input_ids"]
    where = (ids[0] == tokenizer.mask_token_id).nonzero().item()
    with torch.no_grad():
        return model(input_ids=ids).logits[0, where].log_softmax(-1)


@pytest.mark.parametrize("model", ["tiny_gpt2_dir", "tiny_llama_dir", "tiny_bert_dir", "tiny_roberta_dir"])
def test_the_search_reads_the_models_own_distribution_at_the_slot(request, model):
    folder = request.getfixturevalue(model)
    loaded = load_model(str(folder), device="cpu", dtype="float32")
    backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
    source = "{{ text }} It was {{ mask }}." if loaded.kind == "mlm" else "{{ text }} It was {{ mask }}"
    template = parse_template(source, name="t", task="toy", path=folder / "t.jinja")
    texts = ["a great movie", "it was a terrible and boring film , really", "fun", "bad acting", "the plot", "love"]
    examples = [{"id": str(i), "text": text, "label": ["negative", "positive"][i % 2]} for i, text in enumerate(texts)]
    result = vs.search(backend, template, ["negative", "positive"], examples[:4], examples[4:], candidates=3,
                       batch_size=3)  # batches of different lengths: padding is exercised
    assert result.scores.shape == (6, len(result.columns))
    for row in (0, 1, 4):
        text = texts[row]
        reference = _reference_logprobs(folder, f"{text} It was ", "." if loaded.kind == "mlm" else "")
        torch.testing.assert_close(result.scores[row], reference[result.columns], atol=2e-4, rtol=1e-4)
    # each chosen word scores as the backend scores it for zeroshot: its token's column is its log-prob
    words = [word for label_words in result.words.values() for word in label_words]
    prompts = [template.render(example) for example in examples]
    with torch.inference_mode():
        scored = backend.word_logprobs(prompts, words).cpu()
    tokens = [backend.word_tokens(prompts[0], word) for word in words]
    assert all(len(word_tokens) == 1 for word_tokens in tokens)
    columns = [result.columns.index(word_tokens[0]) for word_tokens in tokens]
    torch.testing.assert_close(result.scores[:, columns], scored, atol=2e-4, rtol=1e-4)


def test_candidates_are_word_tokens_that_read_back_as_themselves(tiny_gpt2_dir, tiny_bert_dir):
    gpt2 = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    ids, words = vs.vocabulary_words(gpt2)
    tokens = gpt2.convert_ids_to_tokens(ids)
    assert "Ġgreat" in tokens and "great" in tokens  # both decode to "great"; only one reads back
    assert all(word.isalpha() and len(word) >= 2 for word in words)
    assert gpt2.eos_token_id not in ids
    bert = AutoTokenizer.from_pretrained(tiny_bert_dir)
    bert_ids, _ = vs.vocabulary_words(bert)
    bert_tokens = bert.convert_ids_to_tokens(bert_ids)
    assert "great" in bert_tokens and not any(token.startswith(("##", "[")) for token in bert_tokens)

    loaded = load_model(str(tiny_gpt2_dir), device="cpu", dtype="float32")
    backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
    template = parse_template("{{ text }} It was {{ mask }}", name="t", task="toy", path=tiny_gpt2_dir / "t.jinja")
    probe = [template.content_free("N/A")]
    assert vs.reads_as_token(backend, probe, "great", gpt2.convert_tokens_to_ids("Ġgreat"))
    assert not vs.reads_as_token(backend, probe, "great", gpt2.convert_tokens_to_ids("great"))
    glued = parse_template("{{ text }} It was:{{ mask }}", name="t", task="toy", path=tiny_gpt2_dir / "t.jinja")
    assert vs.reads_as_token(backend, [glued.content_free("N/A")], "great", gpt2.convert_tokens_to_ids("great"))


# ---------------------------------------------------------------- (b) ranking and assignment, known answers

def test_ranking_removes_words_likely_everywhere_and_keeps_the_lists_disjoint():
    # columns: 0 signals label 0, 1 signals label 1, 2 is the likeliest word for every input (a little more
    # for label 1), 3 weakly signals label 0 and is never likely
    gold = torch.tensor([0, 0, 0, 1, 1, 1])
    scores = torch.tensor([[-1.0, -6.0, -0.5, -3.0], [-1.5, -6.5, -0.4, -3.5], [-1.2, -5.5, -0.6, -3.2],
                           [-6.0, -1.0, -0.45, -3.6], [-5.5, -1.2, -0.35, -3.8], [-6.5, -1.4, -0.55, -3.9]])
    ranked = vs.rank_candidates(scores, gold, 2)
    assert ranked == [[0, 3], [1, 2]]  # the everywhere-likely word 2 ranks below the signal, in one list only
    assert vs.rank_candidates(scores, gold, 2, pool=2) == [[0], [1, 2]]  # 3 is not among label 0's 2 likeliest
    assert vs.select_candidates(ranked, 1, lambda column: column != 0) == [[3], [1]]


def test_coordinate_ascent_finds_the_separating_words_and_breaks_ties_by_dev():
    gold = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])  # 4 training rows, then 4 dev rows
    n_train = 4
    g0, g1 = [0.0, -5.0] * 4, [-5.0, 0.0] * 4
    scores = torch.tensor([
        g0,  # 0: signals label 0, on train and dev
        g1,  # 1: signals label 1
        g0[:4] + g1[4:],  # 2: as good as 0 on train, reversed on dev
        g1,  # 3: signals label 1 (a bad word for label 0: the labels then tie, and the first wins)
    ]).T
    assignment = vs.coordinate_ascent(scores, gold, n_train, [[3, 2, 0], [1]], words_per_label=1)
    assert assignment.word_sets == [[0], [1]]  # 2 ties with 0 on train and ranks higher; dev decides
    assert (assignment.train_correct, assignment.dev_correct) == (4, 4) and assignment.rounds == 2
    start = vs.calibrated_correct(vs.label_scores(scores, [[3], [1]]), gold, n_train)
    assert start.tolist() == [True, False] * 4  # where the search started: half right
    labels = vs.label_scores(scores, [[0, 3], [1]])
    torch.testing.assert_close(labels[:, 0], torch.logsumexp(scores[:, [0, 3]], dim=1))
    two = vs.coordinate_ascent(scores, gold, n_train, [[3, 2, 0], [1, 3]], words_per_label=2)
    assert all(len(words) == 2 and len(set(words)) == 2 for words in two.word_sets)


def test_the_search_picks_the_words_that_signal_the_labels(echo_catalog, echo_gpt2_dir, tmp_path):
    out = tmp_path / "out"
    result = invoke("verbalizers", "search", "--catalog", echo_catalog, "--task", "echo", "--template", "t1",
                    "--k", 4, "--model", echo_gpt2_dir, "--output", out, "--json", "--batch-size", 3)
    summary = last_json(result)
    assert summary["words"] == {"negative": ["terrible"], "positive": ["great"]}
    assert summary["train_accuracy"] == summary["dev_accuracy"] == 1.0
    assert summary["default_verbalizer"] == "default"
    assert summary["train_accuracy"] >= summary["default_train_accuracy"]
    assert summary["k"] == 4 and summary["seed"] == 13 and summary["name"] == "search-k4-seed13"
    assert summary["sample_checksum"] == split_of(echo_catalog, "echo", 4, 13).checksum  # fewshot's draw
    assert "negative: terrible" in result.output and "searched verbalizer: train accuracy 1.0000" in result.output

    # (c) the file loads with the verbalizer loader and zeroshot uses it
    path = out / "verbalizers" / "echo" / "search-k4-seed13.yaml"
    assert summary["path"] == str(path) and sorted(p.name for p in path.parent.iterdir()) == [path.name]
    text = path.read_text()
    assert text.startswith("# Written by `promptlab verbalizers search`")
    assert re.search(r"^# model: .*k: 4, seed: 13", text, re.MULTILINE)
    assert "# train accuracy 1.0000, dev accuracy 1.0000" in text
    loaded = load_verbalizer(path, task="echo", labels=["negative", "positive"])
    assert loaded.words == {"negative": ("terrible",), "positive": ("great",)}
    zeroshot = last_json(invoke("zeroshot", "--catalog", echo_catalog, "--catalog", out, "--task", "echo",
                                "--template", "t1", "--verbalizer", "search-k4-seed13", "--model", echo_gpt2_dir,
                                "--json"))
    assert zeroshot["verbalizer"] == "search-k4-seed13" and zeroshot["n"] == 8 and zeroshot["accuracy"] == 1.0


def test_several_words_per_label_and_a_chosen_name(echo_catalog, echo_gpt2_dir, tmp_path):
    summary = last_json(invoke("verbalizers", "search", "--catalog", echo_catalog, "--task", "echo", "--k", 4,
                               "--seed", 21, "--model", echo_gpt2_dir, "--output", tmp_path, "--words-per-label", 3,
                               "--candidates", 5, "--name", "three", "--json"))
    assert {label: len(words) for label, words in summary["words"].items()} == {"negative": 3, "positive": 3}
    assert "terrible" in summary["words"]["negative"] and "great" in summary["words"]["positive"]
    assert summary["train_accuracy"] == 1.0
    assert summary["sample_checksum"] == split_of(echo_catalog, "echo", 4, 21).checksum
    loaded = load_verbalizer(tmp_path / "verbalizers" / "echo" / "three.yaml", task="echo",
                             labels=["negative", "positive"])
    assert {label: list(words) for label, words in loaded.words.items()} == summary["words"]


# ---------------------------------------------------------------- (e) a masked LM end to end

@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_llama_dir"])
def test_masked_and_sentencepiece_models_write_usable_files(echo_catalog, request, tmp_path, model):
    folder = request.getfixturevalue(model)
    result = invoke("verbalizers", "search", "--catalog", echo_catalog, "--task", "echo", "--template", "t2",
                    "--k", 3, "--model", folder, "--output", tmp_path, "--candidates", 4, "--json")
    summary = last_json(result)
    assert summary["template"] == "t2" and set(summary["words"]) == {"negative", "positive"}
    assert summary["default_dev_accuracy"] is not None
    # the search's judgment of its words, counted by hand: each label's words' log-probabilities at the slot
    # (logsumexp), minus that label's mean over the training examples, argmax, against the gold labels
    labels = ["negative", "positive"]
    words = load_verbalizer(tmp_path / "verbalizers" / "echo" / f"{summary['name']}.yaml", task="echo",
                            labels=labels).words
    loaded = load_model(str(folder), device="cpu")
    backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
    train = split_of(echo_catalog, "echo", 3, 13).train
    template = parse_template(ECHO_FILES["templates/echo/t2.jinja"], name="t2", task="echo", path=tmp_path / "t2")
    with torch.inference_mode():
        scores = torch.stack([backend.word_logprobs([template.render(e) for e in train], list(words[label]))
                              .float().logsumexp(-1) for label in labels], dim=-1)
    guessed = (scores - scores.mean(0)).argmax(-1).tolist()
    correct = sum(labels[g] == example["label"] for g, example in zip(guessed, train))
    assert summary["train_accuracy"] == correct / len(train)
    zeroshot = last_json(invoke("zeroshot", "--catalog", echo_catalog, "--catalog", tmp_path, "--task", "echo",
                                "--template", "t2", "--verbalizer", summary["name"], "--model", folder, "--json"))
    assert zeroshot["n"] == 8


# ---------------------------------------------------------------- (d) user errors

@pytest.mark.parametrize("args, fragments", [
    (["--task", "nosuch"], ["unknown task 'nosuch'"]),
    (["--task", "echo", "--template", "t9"], ["unknown template of task 'echo' 't9'"]),
    (["--task", "echo", "--k", "11"], ["label 'negative' has 10 training example(s), but k=11 needs 22",
                                       "fix: pass --k 5 or less"]),
    (["--task", "conll2003-sample"], ["verbalizers search does not apply to task 'conll2003-sample'",
                                      "kind entities"]),
    (["--task", "echo", "--name", "../escape"], ["--name '../escape' is not a plain file name"]),
    (["--task", "echo", "--words-per-label", "3", "--candidates", "2"], ["--words-per-label 3 is more than"]),
])
def test_user_errors_exit_2_with_one_message_before_any_model_loads(echo_catalog, tmp_path, args, fragments):
    result = CliRunner().invoke(main, ["verbalizers", "search", "--catalog", str(echo_catalog),
                                       "--model", str(tmp_path / "no-model"), "--output", str(tmp_path / "out"),
                                       *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in result.output, result.output
    assert not (tmp_path / "out" / "verbalizers").exists()


def test_an_output_that_cannot_be_a_folder_is_refused(echo_catalog, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    common = ["verbalizers", "search", "--catalog", str(echo_catalog), "--task", "echo", "--k", "2",
              "--model", str(tmp_path / "no-model"), "--output"]
    result = CliRunner().invoke(main, common + [str(blocker)])  # click's own check of the option
    assert result.exit_code == 2 and "Invalid value for '--output'" in result.output
    result = CliRunner().invoke(main, common + [str(blocker / "below")])
    assert result.exit_code == 2 and result.output.startswith("error: cannot create output folder")
    assert "Traceback" not in result.output


def test_the_yaml_quotes_words_yaml_would_misread(tmp_path):
    text = vs.verbalizer_yaml({"no": ["yes", "on"], "1": ["null", "true"]}, header=["a\nb"], description="d: x")
    path = tmp_path / "v.yaml"
    path.write_text(text)
    assert text.startswith("# a\n# b\n")
    loaded = load_verbalizer(path, task="t", labels=["no", "1"])
    assert loaded.words == {"no": ("yes", "on"), "1": ("null", "true")} and loaded.description == "d: x"
