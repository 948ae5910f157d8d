"""Many processes give the results of one: sharding, gathering, data-parallel training, suites.

The unit tests play each process's part in turn inside one process (the launcher's environment
variables set by monkeypatch). The launch test starts 2 real CPU processes (gloo) with
`accelerate launch` and compares every output with a single-process run.
"""
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from catalog_files import SENTIMENT_FILES, write_catalog
from click.testing import CliRunner
from safetensors.torch import load_file

from promptlab.runtime import distributed

from promptlab.methods import pipeline
from promptlab.backends import make_backend
from promptlab.catalog.catalog import Catalog, Setup
from promptlab.cli import main
from promptlab.backends.models import load_model
from promptlab.methods.pipeline import render_all
from promptlab.evaluation.runner import RESULTS_FILE, run_suite
from promptlab.backends.scoring import LabelScorer
from promptlab.evaluation.shared_results import rank_file
from promptlab.evaluation.suite import load_suite
from promptlab.catalog.verbalizer import Verbalizer

REPOSITORY = Path(__file__).resolve().parents[1]
SEVEN = [("a great movie", "positive"), ("a terrible movie and a very bad plot", "negative"), ("good fun", "positive"),
         ("bad", "negative"), ("the movie was great", "positive"), ("it was bad and boring and not fun", "negative"),
         ("i love this film", "positive")]
SUITE = """\
description: toy suite over processes
tasks: [toy]
models: [{model}]
methods:
  - zeroshot: {{calibrate: [none, contextual, pmi]}}
  - majority
  - softprompt: {{steps: 3, batch_size: 3}}
shots: [0, 2]
seeds: [1, 2]
"""
ZERO_SHOT_SUITE = """\
description: toy zero-shot suite
tasks: [toy]
models: [{model}]
methods: [{{zeroshot: {{calibrate: [none, contextual, pmi]}}}}, majority]
shots: [0, 2]
seeds: [1, 2]
"""
TIME_FIELDS = ("seconds", "finished", "details")  # details: seconds per step


def as_process(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", str(rank))


@pytest.fixture
def catalog(tmp_path, tiny_bert_dir):
    seven = "".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in SEVEN)
    return write_catalog(tmp_path / "catalog", {**SENTIMENT_FILES, "seven.jsonl": seven,
                                                "eval_suites/toy-dist.yaml": SUITE.format(model=tiny_bert_dir),
                                                "eval_suites/toy-zero.yaml":
                                                    ZERO_SHOT_SUITE.format(model=tiny_bert_dir)})


# ---------------------------------------------------------------- one process playing each part

def test_shares_follow_the_launcher_and_alone_undoes_them(monkeypatch):
    assert (distributed.world(), distributed.rank(), distributed.is_main()) == (1, 0, True)
    as_process(monkeypatch, rank=1, world=3)
    assert (distributed.world(), distributed.rank(), distributed.is_main()) == (3, 1, False)
    assert distributed.shard(list(range(7))) == [1, 4]
    with distributed.alone():
        assert (distributed.world(), distributed.rank(), distributed.is_main()) == (1, 0, True)
        assert distributed.shard(list(range(7))) == list(range(7))
    assert distributed.processes() == 3 and distributed.world() == 3


class _Lengths:
    """A backend that only knows prompt lengths: enough for batching."""

    def __init__(self, lengths):
        self.lengths = lengths

    def prompt_length(self, prompt):
        return self.lengths[prompt]


@pytest.mark.parametrize("n, batch_size, world", [(7, 2, 2), (7, 32, 2), (10, 3, 3), (33, 5, 2), (12, 1, 4)])
def test_a_share_of_whole_batches_is_batched_the_same_again(n, batch_size, world):
    lengths = [(i * 7) % 5 for i in range(n)]  # many ties: the stable sort matters
    verbalizer = Verbalizer("v", "toy", Path("v.yaml"), {"a": ("x",), "b": ("y",)})
    scorer = LabelScorer(_Lengths(lengths), None, verbalizer, batch_size=batch_size)
    batches = scorer.length_batches(list(range(n)))
    assert sorted(i for batch in batches for i in batch) == list(range(n))
    for rank in range(world):
        shared = batches[rank::world]
        mine = [i for batch in shared for i in batch]
        scorer.backend = _Lengths([lengths[i] for i in mine])
        again = scorer.length_batches(list(range(len(mine))))
        assert [[mine[j] for j in batch] for batch in again] == shared
        scorer.backend = _Lengths(lengths)


@pytest.mark.parametrize("model", ["tiny_bert_dir", "tiny_gpt2_dir"])
@pytest.mark.parametrize("calibrate", ["contextual", "pmi"])
def test_shared_scores_are_bitwise_the_single_process_scores(monkeypatch, request, catalog, model, calibrate):
    setup = Setup.load(Catalog.from_options([catalog]), "toy", "t1")
    loaded = load_model(str(request.getfixturevalue(model)), device="cpu")
    prompts = render_all(setup.template, [{"text": text} for text, _ in SEVEN])

    def scorer():  # a fresh one per process: each computes its own calibration baseline
        backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
        return LabelScorer(backend, setup.template, setup.verbalizer, calibrate=calibrate, batch_size=2)

    with torch.inference_mode():
        alone = pipeline.score_all(scorer(), prompts, 2)
        pieces = []
        monkeypatch.setattr(distributed, "gather_rows", lambda indices, rows, total: pieces.append((indices, rows)))
        for rank in range(2):
            as_process(monkeypatch, rank=rank, world=2)
            pipeline.score_all(scorer(), prompts, 2)
    assert sorted(len(indices) for indices, _ in pieces) == [3, 4]  # 4 batches of 2, 2, 2, 1
    gathered = torch.empty_like(alone)
    for indices, rows in pieces:
        gathered[indices] = rows
    assert torch.equal(gathered, alone)


def test_batch_calibration_under_a_launcher_divides_out_the_prior_of_all_examples(monkeypatch, catalog, tiny_gpt2_dir):
    setup = Setup.load(Catalog.from_options([catalog]), "toy", "t1")
    loaded = load_model(str(tiny_gpt2_dir), device="cpu")
    prompts = render_all(setup.template, [{"text": text} for text, _ in SEVEN])

    def scorer(calibrate):
        backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
        return LabelScorer(backend, setup.template, setup.verbalizer, calibrate=calibrate, batch_size=2)

    with torch.inference_mode():
        uncalibrated = pipeline.score_all(scorer("none"), prompts, 2)
        alone = pipeline.score_all(scorer("batch"), prompts, 2)
        sent = []

        def gather(indices, rows, total):  # what the real gather returns: every process's rows in order
            sent.append(rows)
            torch.testing.assert_close(rows, uncalibrated[indices])  # shares travel uncalibrated
            return uncalibrated

        monkeypatch.setattr(distributed, "gather_rows", gather)
        for rank in range(2):
            as_process(monkeypatch, rank=rank, world=2)
            torch.testing.assert_close(pipeline.score_all(scorer("batch"), prompts, 2), alone)
    assert len(sent) == 2 and not torch.allclose(alone, uncalibrated)


def test_other_processes_print_nothing(monkeypatch):
    as_process(monkeypatch, rank=1, world=2)
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # restored after the test
    distributed.quiet_other_processes()
    assert sys.stdout.name == os.devnull


def test_a_single_process_cpu_launch_is_announced(monkeypatch, capsys):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")  # what `accelerate launch --cpu --num_processes 2` sets,
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")  # with MASTER_ADDR, when it starts one process only
    distributed.quiet_other_processes()
    assert "started one process" in capsys.readouterr().err


def test_rows_left_by_an_interrupted_launch_are_merged_not_run_again(catalog, tmp_path):
    suite = load_suite("toy-zero", Catalog.from_options([catalog]))
    full = run_suite(suite, tmp_path / "full", device="cpu")
    lines = (tmp_path / "full" / RESULTS_FILE).read_text().splitlines(keepends=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / RESULTS_FILE).write_text(lines[0])
    rank_file(out / RESULTS_FILE, 1).write_text("".join(lines[1:3]) + lines[3][:30])  # killed mid-row
    outcome = run_suite(suite, out, device="cpu")
    assert (outcome.ran, outcome.skipped) == (full.runs - 3, 3)
    assert not rank_file(out / RESULTS_FILE, 1).exists()
    keys = [json.loads(line)["key"] for line in (out / RESULTS_FILE).read_text().splitlines()]
    assert sorted(keys) == sorted(row["key"] for row in full.rows)


# ---------------------------------------------------------------- 2 real processes

LAUNCHED = """\
import json, sys
from promptlab.cli import main  # what `python -m promptlab` runs, once per command line
for arguments in json.load(open(sys.argv[1])):
    main(arguments, standalone_mode=False)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _commands(catalog: Path, bert: Path, gpt2: Path, out: Path, device: list[str]) -> list[list[str]]:
    common = ["--catalog", str(catalog), "--task", "toy", "--template", "t1", "--json", *device]
    fewshot = ["fewshot", *common, "--model", str(bert), "--k", "3", "--seeds", "13", "--steps", "4",
               "--batch-size", "3", "--dtype", "float32"]  # batches of 3 rows: shares of 2 and 1
    # Training in float32: a bfloat16 gradient summed from two shares differs from the whole batch's in its
    # last bits, which the tight comparison of the trained prompts below would see.
    return [
        # 7 examples in batches of 2: 4 batches, shares of 4 and 3 examples
        ["zeroshot", *common, "--model", str(bert), "--data", str(catalog / "seven.jsonl"), "--batch-size", "2",
         "--output", str(out / "zeroshot-bert")],
        # one batch: the second process has nothing to score
        ["zeroshot", *common, "--model", str(gpt2), "--calibrate", "pmi", "--output", str(out / "zeroshot-gpt2")],
        [*fewshot, "--method", "softprompt", "--output", str(out / "softprompt")],
        [*fewshot, "--method", "finetune", "--output", str(out / "finetune")],
        ["eval", "toy-dist", "--catalog", str(catalog), "--json", *device, "--output", str(out / "eval")],
    ]


def _results_rows(folder: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (folder / RESULTS_FILE).read_text().splitlines()]
    return {row["key"]: {k: v for k, v in row.items() if k not in TIME_FIELDS} for row in rows}


def _close_runs(one: dict, two: dict) -> None:
    for alone, shared in zip(one["per_seed"], two["per_seed"], strict=True):
        assert (shared["accuracy"], shared["train_steps"], shared["best_step"]) == \
               (alone["accuracy"], alone["train_steps"], alone["best_step"])
        assert shared["losses"] == pytest.approx(alone["losses"], abs=2e-4)  # rounded to 4 places


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate is not installed")
def test_two_cpu_processes_write_what_one_process_writes(tmp_path, catalog, tiny_bert_dir, tiny_gpt2_dir):
    (tmp_path / "commands.json").write_text(json.dumps(_commands(catalog, tiny_bert_dir, tiny_gpt2_dir,
                                                                 tmp_path / "two", [])))
    (tmp_path / "launched.py").write_text(LAUNCHED)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), str(tmp_path / "launched.py"), str(tmp_path / "commands.json")]
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPOSITORY)}  # CPUs, gloo
    launched = subprocess.run(launch, capture_output=True, text=True, env=environment, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    for command in _commands(catalog, tiny_bert_dir, tiny_gpt2_dir, tmp_path / "one", ["--device", "cpu"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 0, result.output

    one, two = tmp_path / "one", tmp_path / "two"
    summaries = [json.loads(line) for line in launched.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 5  # one --json line per command: the other process printed nothing
    assert [summary.get("processes") for summary in summaries[:2]] == [2, 2]
    for name in ("zeroshot-bert", "zeroshot-gpt2", "softprompt/seed-13", "finetune/seed-13"):
        assert (two / name / "predictions.jsonl").read_bytes() == (one / name / "predictions.jsonl").read_bytes()
    for method in ("softprompt", "finetune"):
        _close_runs(*(json.loads((folder / method / "fewshot.json").read_text()) for folder in (one, two)))
    prompts = [load_file(folder / "softprompt" / "seed-13" / "weights.safetensors")["prompt_embeddings"]
               for folder in (one, two)]
    torch.testing.assert_close(prompts[1], prompts[0], atol=1e-4, rtol=1e-3)
    assert _results_rows(two / "eval") == _results_rows(one / "eval")
    assert sorted(path.name for path in (two / "eval").iterdir()) == \
           sorted(path.name for path in (one / "eval").iterdir())  # reports written, no per-process file left


def _fake_gather(monkeypatch, others):
    """accelerate's gather_object as if the other processes sent `others`; returns what this one sent."""
    import accelerate.utils
    sent = []

    def gather_object(mine):
        sent.extend(mine)
        return sorted(mine + others, key=lambda piece: piece[0])

    monkeypatch.setattr(accelerate.utils, "gather_object", gather_object)
    monkeypatch.setattr(distributed, "_state", lambda **kwargs: None)
    return sent


def test_gathered_rows_must_cover_every_index_exactly_once(monkeypatch):
    as_process(monkeypatch, rank=0, world=2)
    _fake_gather(monkeypatch, [(1, [1, 2], torch.ones(2, 2), None)])
    with pytest.raises(RuntimeError, match=r"missing \[3\], repeated \[1\]"):
        distributed.gather_rows([0, 1], torch.zeros(2, 2), 4)
    _fake_gather(monkeypatch, [(1, [3, 1], torch.tensor([[3.0, 3.0], [1.0, 1.0]]), None)])
    full = distributed.gather_rows([2, 0], torch.tensor([[2.0, 2.0], [0.0, 0.0]]), 4)
    assert full[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


class _OneBatchPerPrompt:
    def __init__(self, error=None):
        self.error = error

    def length_batches(self, prompts):
        return [[i] for i in range(len(prompts))]

    def example_logprobs(self, prompts, progress=None):
        if self.error:
            raise self.error
        return torch.zeros(len(prompts), 2)

    def calibrate_set(self, logprobs):
        return logprobs


def test_a_failing_process_ends_the_others_with_its_error(monkeypatch):
    as_process(monkeypatch, rank=1, world=2)
    sent = _fake_gather(monkeypatch, [(0, [0, 2], torch.zeros(2, 2), None)])
    with pytest.raises(MemoryError, match="out of memory"):  # its own error, after joining the gather
        pipeline.score_all(_OneBatchPerPrompt(MemoryError("out of memory")), list("abcd"), 2)
    assert [(rank, indices, error) for rank, indices, _, error in sent] == [(1, [1, 3], "MemoryError: out of memory")]
    as_process(monkeypatch, rank=0, world=2)  # the process whose share went well stops too, not blocked
    _fake_gather(monkeypatch, sent)
    with pytest.raises(RuntimeError, match="process 1 failed: MemoryError: out of memory"):
        pipeline.score_all(_OneBatchPerPrompt(), list("abcd"), 2)
