"""Automatic label-word search (LM-BFF, Gao et al. 2021, "Making Pre-trained Language Models Better
Few-shot Learners", automatic selection of label words), behind `promptlab verbalizers search`.

    k-shot sample --one forward per example--> log p(token | slot) over the vocabulary
        --> candidate words per label --> coordinate ascent on training accuracy --> verbalizer file

Decisions:
- The sample is `fewshot`'s: `sample_kshot` on the train split without the texts of the test split
  (when the task has one), k train + k dev examples per class for `--seed`. So `fewshot --seeds S`
  and `verbalizers search --seed S` see the same examples.
- The vocabulary distribution at the slot comes from the backends' own `slot_logprobs`: the same
  input, truncation and padding that score a single-token word in `word_logprobs` (causal: the next
  token after the text before the slot, its trailing whitespace left to the word; masked: one mask
  token in the slot). A word of one token therefore scores in the written verbalizer exactly as
  it scored in the search.
- Candidate words are single tokens that `decode` to an alphabetic text of 2+ characters and are
  no special or added token, and that the backend reads back as exactly that token when the word
  is put in the slot (`word_tokens` on the template's content-free prompt and on the first
  training prompt). That round trip is what "a whole word preceded by a space" means for each
  tokenizer: byte-level BPE keeps 'Ġgreat' and drops 'great' (which would need no space), WordPiece
  drops '##ing', and a template with no whitespace before the slot gets the tokens that read so.
  Whether a word-initial token is a whole word of the language is not checked (' gre' may pass).
- Ranking: for label c, mean log p(w | x) over c's training examples minus the mean over all
  training examples (words likely for every input drop out). Words are first pruned to the
  LIKELY_POOL most likely ones by their mean log-probability over c's examples (LM-BFF's pruning by
  conditional likelihood): without it the contrast favours rare tokens whose tiny probabilities
  merely vary. A word belongs to the label where its contrast is highest, so the candidate lists
  are disjoint; each label keeps its top `--candidates` (default 20).
- Assignment: each label starts from its best candidates; coordinate ascent goes label by label
  (and, with `--words-per-label M`, slot by slot), trying every candidate of that label with the
  others fixed, and keeps one only if it raises the training accuracy, ties broken by the dev
  accuracy (a candidate must be strictly better on (train, dev) to replace the current word); it
  stops when a whole round changes nothing (or after MAX_ROUNDS). The score of a label is the
  logsumexp of its words' log-probabilities (the default `--aggregate`); the prediction is the
  argmax over labels of that score minus its mean over the training examples (batch-style
  calibration; dev examples use the training means too). Everything comes from the cached
  vocabulary log-probabilities: nothing is scored again.
- The task's default verbalizer (when it has one) is scored with the ordinary LabelScorer path
  (any words, several tokens included) and judged the same way, for comparison.
- The file goes to `--output DIR` (required; a catalog folder) as `verbalizers/<task>/<name>.yaml`,
  written atomically (temp file + rename), labels and words quoted as JSON strings (valid YAML
  that no YAML 1.1 boolean rule can misread), after a comment recording model, template, k, seed,
  sample checksum and accuracies. An existing file of that name is replaced. The file is loaded
  back with `load_verbalizer` before the command reports success.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

from promptlab.backends.batching import BackOff
from promptlab.errors import UserError
from promptlab.catalog.template import Prompt, Template
from promptlab.catalog.verbalizer import Verbalizer

LIKELY_POOL = 1000  # words per label considered at all: the most likely at the slot over its examples
MAX_ROUNDS = 20  # coordinate ascent stops earlier as soon as a round changes nothing
MIN_WORD_LENGTH = 2
NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]*\Z")


# ---------------------------------------------------------------- the vocabulary at the slot

def vocabulary_words(tokenizer) -> tuple[list[int], list[str]]:
    """Token ids that decode to an alphabetic word of 2+ characters (no special or added token), and
    those words without their leading whitespace. Whether the backend reads the word back as this
    token is checked later (`reads_as_token`), for the few that are ranked high enough."""
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    ids = [i for i in range(len(tokenizer)) if i not in special]
    texts = tokenizer.batch_decode([[i] for i in ids], clean_up_tokenization_spaces=False)
    kept = [(i, text.strip()) for i, text in zip(ids, texts)
            if len(text.strip()) >= MIN_WORD_LENGTH and text.strip().isalpha()]
    return [i for i, _ in kept], [word for _, word in kept]


def reads_as_token(backend, prompts: Sequence[Prompt], word: str, token: int) -> bool:
    """Whether the backend scores `word` in the slot of every prompt as exactly the one token."""
    return all(backend.word_tokens(prompt, word) == [token] for prompt in prompts)


def slot_scores(backend, prompts: Sequence[Prompt], columns: torch.Tensor, *, batch_size: int,
                progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """log p(token | slot) [N, len(columns)] on the CPU: the backend's vocabulary distribution, kept at
    `columns`, in batches of similar length (halved when the GPU runs out of memory), in input order."""
    order = sorted(range(len(prompts)), key=lambda i: backend.prompt_length(prompts[i]))
    batches = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    backoff, pieces = BackOff(), []
    device_columns = columns.to(backend.device)
    with torch.inference_mode():
        for batch in batches:
            pieces += backoff.run(batch, lambda rows: backend.slot_logprobs(
                [prompts[i] for i in rows])[:, device_columns].float().cpu())
            if progress:
                progress(len(batch))
    stacked = torch.cat(pieces)
    return stacked[torch.argsort(torch.tensor([i for batch in batches for i in batch]))]


# ---------------------------------------------------------------- candidates

def contrast(train: torch.Tensor, gold: torch.Tensor, n_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean log p over each label's examples [L, C], that minus the mean over all examples [L, C])."""
    class_means = torch.stack([train[gold == label].mean(0) for label in range(n_labels)])
    return class_means, class_means - train.mean(0)


def rank_candidates(train: torch.Tensor, gold: torch.Tensor, n_labels: int, *,
                    pool: int = LIKELY_POOL) -> list[list[int]]:
    """Per label, the columns it owns, best first: within its `pool` most likely words, the words whose
    contrast is highest for this label (ties to the earlier label), by contrast."""
    likelihood, scores = contrast(train, gold, n_labels)
    pool = min(pool, train.shape[1])
    likely = torch.zeros_like(scores, dtype=torch.bool)
    likely.scatter_(1, likelihood.topk(pool, dim=1).indices, True)
    owner = scores.masked_fill(~likely, float("-inf")).argmax(0)  # [C]; a word likely for no label: label 0's -inf
    ranked = []
    for label in range(n_labels):
        mine = ((owner == label) & likely[label]).nonzero().squeeze(1)
        ranked.append(mine[scores[label, mine].argsort(descending=True, stable=True)].tolist())
    return ranked


def select_candidates(ranked: list[list[int]], n: int, accepts: Callable[[int], bool]) -> list[list[int]]:
    """Each label's first n ranked columns that `accepts` keeps (checked lazily, down the ranking)."""
    chosen = []
    for columns in ranked:
        kept: list[int] = []
        for column in columns:
            if len(kept) == n:
                break
            if accepts(column):
                kept.append(column)
        chosen.append(kept)
    return chosen


# ---------------------------------------------------------------- the assignment

def label_scores(scores: torch.Tensor, word_sets: Sequence[Sequence[int]]) -> torch.Tensor:
    """[N, C] word scores -> [N, L]: logsumexp over each label's word columns."""
    return torch.stack([scores[:, list(columns)].logsumexp(1) for columns in word_sets], dim=1)


def calibrated_correct(labels: torch.Tensor, gold: torch.Tensor, n_train: int) -> torch.Tensor:
    """Correct predictions [..., N] of label scores [..., N, L] after subtracting the mean over the first
    n_train rows (the training examples): argmax_c s_c(x) - mean_train s_c."""
    calibrated = labels - labels[..., :n_train, :].mean(-2, keepdim=True)
    return calibrated.argmax(-1) == gold


@dataclass
class Assignment:
    word_sets: list[list[int]]  # per label, its words as columns
    train_correct: int
    dev_correct: int
    rounds: int


def coordinate_ascent(scores: torch.Tensor, gold: torch.Tensor, n_train: int, candidates: list[list[int]],
                      words_per_label: int) -> Assignment:
    """Maximise (training accuracy, dev accuracy) over one word set per label, one slot at a time.

    `scores` [N, C] holds the training rows first (n_train), then the dev rows; `gold` [N].
    """
    sets = [list(columns[:words_per_label]) for columns in candidates]
    labels = label_scores(scores, sets)

    def counts(correct: torch.Tensor) -> torch.Tensor:  # [..., N] -> [..., 2]: (train, dev) correct
        return torch.stack([correct[..., :n_train].sum(-1), correct[..., n_train:].sum(-1)], dim=-1)

    best = counts(calibrated_correct(labels, gold, n_train)).tolist()
    rounds = 0
    for rounds in range(1, MAX_ROUNDS + 1):
        changed = False
        for label, columns in enumerate(candidates):
            for slot in range(words_per_label):
                others = sets[label][:slot] + sets[label][slot + 1:]
                options = [column for column in columns if column not in sets[label]]
                if not options:
                    continue
                trial = labels.unsqueeze(0).repeat(len(options), 1, 1)  # [O, N, L]
                trial[:, :, label] = torch.stack([scores[:, others + [column]].logsumexp(1) for column in options])
                results = counts(calibrated_correct(trial, gold, n_train)).tolist()
                pick = max(range(len(options)), key=lambda i: (results[i], -i))  # the best; the higher ranked on ties
                if results[pick] > best:
                    sets[label][slot] = options[pick]
                    labels[:, label] = trial[pick, :, label]
                    best, changed = results[pick], True
        if not changed:
            break
    return Assignment(sets, best[0], best[1], rounds)


# ---------------------------------------------------------------- the whole search

@dataclass
class SearchResult:
    words: dict[str, list[str]]  # label -> chosen words
    candidates: dict[str, list[str]]  # label -> its candidate words, best first
    train_accuracy: float
    dev_accuracy: float
    rounds: int
    vocabulary: int  # alphabetic word tokens considered
    scores: torch.Tensor = field(repr=False)  # [N, C] the cached log-probabilities (train rows, then dev)
    columns: list[int] = field(repr=False)  # the vocabulary id of each column


def search(backend, template: Template, labels: list[str], train: list[dict], dev: list[dict], *,
           candidates: int = 20, words_per_label: int = 1, batch_size: int = 32,
           progress: Callable[[int], None] | None = None) -> SearchResult:
    """Choose `words_per_label` words for every label from the k-shot `train` and `dev` examples."""
    ids, words = vocabulary_words(backend.tokenizer)
    if not ids:
        raise UserError("the tokenizer has no token that decodes to an alphabetic word",
                        fix="use a model with a word-level vocabulary")
    prompts = [template.render(example) for example in train + dev]
    scores = slot_scores(backend, prompts, torch.tensor(ids), batch_size=batch_size, progress=progress)
    index = {label: i for i, label in enumerate(labels)}
    gold = torch.tensor([index[example["label"]] for example in train + dev])
    n_train = len(train)
    ranked = rank_candidates(scores[:n_train], gold[:n_train], len(labels))
    probes = [template.content_free("N/A"), prompts[0]]
    chosen = select_candidates(ranked, candidates, lambda column: reads_as_token(backend, probes, words[column],
                                                                                 ids[column]))
    short = [label for label, columns in zip(labels, chosen) if len(columns) < words_per_label]
    if short:
        have = min(len(chosen[index[label]]) for label in short)
        raise UserError(f"label '{short[0]}' has {have} candidate word(s), fewer than --words-per-label "
                        f"{words_per_label}" + (f" ({len(short)} labels are short)" if len(short) > 1 else ""),
                        fix=f"pass --words-per-label {have}" if have else
                        "use a model whose vocabulary has more whole-word tokens")
    assignment = coordinate_ascent(scores, gold, n_train, chosen, words_per_label)
    rank = {column: position for columns in chosen for position, column in enumerate(columns)}
    return SearchResult(
        words={label: [words[c] for c in sorted(columns, key=rank.get)]
               for label, columns in zip(labels, assignment.word_sets)},
        candidates={label: [words[c] for c in columns] for label, columns in zip(labels, chosen)},
        train_accuracy=assignment.train_correct / n_train, dev_accuracy=assignment.dev_correct / max(len(dev), 1),
        rounds=assignment.rounds, vocabulary=len(ids), scores=scores, columns=ids)


def verbalizer_accuracy(backend, template: Template, verbalizer: Verbalizer, labels: list[str], train: list[dict],
                        dev: list[dict], *, batch_size: int = 32) -> tuple[float, float]:
    """(train, dev) accuracy of an existing verbalizer judged as the search judges its words: logsumexp
    over a label's words, minus the label's mean score over the training examples, argmax."""
    from promptlab.backends.scoring import LabelScorer

    scorer = LabelScorer(backend, template, verbalizer, aggregate="logsumexp", calibrate="none",
                         batch_size=batch_size)
    with torch.inference_mode():
        words = scorer.word_scores([template.render(example) for example in train + dev]).float().cpu()
    label_words = scorer.aggregate_words(words)
    gold = torch.tensor([labels.index(example["label"]) for example in train + dev])
    correct = calibrated_correct(label_words, gold, len(train))
    return correct[:len(train)].float().mean().item(), correct[len(train):].float().mean().item()


# ---------------------------------------------------------------- the file

def check_name(name: str) -> None:
    if not NAME.match(name) or name.endswith(".yaml"):
        raise UserError(f"--name '{name}' is not a plain file name",
                        fix="use letters, digits, '.', '_' and '-' (no folders, no .yaml), e.g. search-k16-seed13")


def verbalizer_yaml(words: dict[str, list[str]], *, header: Sequence[str], description: str) -> str:
    """The verbalizer file: comment lines, a description and every label's words, all quoted."""
    lines = [f"# {line}".rstrip() for text in header for line in text.splitlines()]
    lines.append(f"description: {json.dumps(description, ensure_ascii=False)}")
    lines.append("labels:")
    for label, label_words in words.items():
        quoted = ", ".join(json.dumps(word, ensure_ascii=False) for word in label_words)
        lines.append(f"  {json.dumps(label, ensure_ascii=False)}: [{quoted}]")
    return "\n".join(lines) + "\n"


def verbalizer_path(output: str | Path, task: str, name: str) -> Path:
    return Path(output) / "verbalizers" / task / f"{name}.yaml"
