"""Speed, side by side in one run: zero-shot scoring and training per dtype, against bare passes.

    python benchmarks/speed.py [--tasks snips,sentiment,banking77] [--limit-mr 2000] [--limit-banking 100]
                               [--limit-snips 400] [--dtypes float32,auto]
                               [--contenders promptlab,bare] [--training-repeats 3] [--accuracy-limit 100]
                               [--accuracy-tasks sentiment,cr] [--fewshot] [--output FILE]

Zero-shot scoring. For each task and dtype every contender runs in its own process, one after
another, on the same model, examples, prompt text and label words (no calibration, one word per label):

- promptlab: `promptlab zeroshot --data <the exported examples> --dtype D --json`;
- bare forward: the model, in the same dtype, on the same prompts (the text before the answer slot),
  length-sorted batches, left-padded, logits at the last position only: what scoring cannot beat,
  because it must at least read every prompt once (`python benchmarks/speed.py bare ...`);
- lm-evaluation-harness, when `lm_eval` is installed in `--lm-eval-python` (a venv of its own), in each
  of `--lm-eval-dtypes` (float32 is its default on this float32 checkpoint; bfloat16 loads the weights
  in bfloat16): a multiple_choice task whose context is the same prompt text and whose choices are the
  same words, from the same exported JSONL. It runs in every round, after promptlab's contenders.

Training (`--training-repeats`): per dtype, `benchmarks/fewshot_step.py`: one soft-prompt training
step against a bare forward and backward of the same batch.

Accuracy (`--accuracy-limit`): per dtype, every built-in text task zero-shot as a user runs it (template
t1, the task's default verbalizer, contextual calibration) on its first N test examples (MR: the
first `--limit-mr`), with the examples/s of that run.

Few-shot (`--fewshot`): per dtype, `promptlab fewshot --task sentiment --template t1 --k 16 --seeds 13
--limit 200`, wall time of the whole command.

The dtypes alternate within every round, so a change in the machine's load hits both alike; each
measurement records the 1-minute load average at its start. The machine being shared, compare
ratios within one run, never numbers across runs.

Data: SNIPS is the first `--limit-snips` of its 346 test examples followed by train examples (400: all
346 and the first 54 of train); MR is the first
`--limit-mr` test examples; Banking77 the first `--limit-banking` of its (shuffled) 3080 test
examples, since lm-eval runs one sequence per intent: 77 per example. lm-eval is only used here,
never a dependency of promptlab.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

MODEL = "smollm2-135m"
_LOADS: list[float] = []  # the load average at the start of every measurement, in order
_CPU: list[float] = []  # the CPU seconds (user + system) of every measured process: less swayed by the load
FEWSHOT = ["fewshot", "--task", "sentiment", "--template", "t1", "--k", "16", "--seeds", "13", "--limit", "200"]
BENCHMARKS = {  # task -> (template, verbalizer, description)
    "snips": ("t1", "default", "SNIPS, 7 intents named by 2-8 tokens each"),
    "sentiment": ("t1", "lmbff", "MR, 2 single-token labels (terrible / great)"),
    "banking77": ("t1", "default", "Banking77, 77 intents named by their label names (1-9 tokens)"),
}
LM_EVAL_TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: {choices}
doc_to_target: gold
target_delimiter: {delimiter}
metric_list:
  - metric: acc
"""


@dataclass
class Measured:
    contender: str
    n: int
    wall_s: float
    scoring_s: float | None
    accuracy: float | None
    dtype: str = "float32"
    load: float = 0.0  # the 1-minute load average when it started
    cpu_s: float | None = None  # the process's CPU seconds

    @property
    def examples_per_s(self) -> float:
        return self.n / (self.scoring_s or self.wall_s)


# ---------------------------------------------------------------- the data every contender reads

def export_examples(task: str, limits: dict[str, int], folder: Path) -> Path:
    """The benchmark's examples as JSONL, with the prompt text and gold index lm-eval needs."""
    from promptlab.backends.inputs import split_trailing_space
    from promptlab.catalog.catalog import Catalog, Setup
    from promptlab.kinds import task_examples

    template, verbalizer, _ = BENCHMARKS[task]
    setup = Setup.load(Catalog.from_options(()), task, template, verbalizer)
    if task == "snips":
        test = task_examples(setup.task, "test")[:limits[task]]
        examples = test + (task_examples(setup.task, "train", limit=limits[task] - len(test))
                           if limits[task] > len(test) else [])
    else:
        examples = task_examples(setup.task, "test", limit=limits[task])
    path = folder / f"{task}.jsonl"
    with path.open("w") as out:
        for example in examples:
            context, _ = split_trailing_space(setup.template.render(example).before)
            row = {"id": example["id"], "text": example["text"], "label": example["label"], "context": context,
                   "gold": setup.task.labels.index(example["label"])}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def label_words(task: str) -> tuple[list[str], str]:
    """One word per label, in label order, and the whitespace the template puts before the slot."""
    from promptlab.backends.inputs import split_trailing_space
    from promptlab.catalog.catalog import Catalog, Setup

    template, verbalizer, _ = BENCHMARKS[task]
    setup = Setup.load(Catalog.from_options(()), task, template, verbalizer)
    words = [setup.verbalizer.words[label] for label in setup.task.labels]
    assert all(len(choices) == 1 for choices in words), "lm-eval's multiple_choice takes one string per label"
    space = split_trailing_space(setup.template.render({name: "x" for name in setup.template.fields}).before)[1]
    return [choices[0] for choices in words], space


# ---------------------------------------------------------------- contenders, one process each

def timed(command: list[str], **kwargs) -> tuple[float, str]:
    _LOADS.append(os.getloadavg()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if done.returncode:
        raise click.ClickException(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def run_promptlab(task: str, data: Path, batch_size: int, dtype: str, device: str) -> Measured:
    template, verbalizer, _ = BENCHMARKS[task]
    wall, stdout = timed([sys.executable, "-m", "promptlab", "zeroshot", "--task", task, "--template", template,
                          "--verbalizer", verbalizer, "--data", str(data), "--model", MODEL, "--device", device,
                          "--dtype", dtype, "--batch-size", str(batch_size), "--calibrate", "none", "--json"])
    summary = json.loads(stdout.strip().splitlines()[-1])
    return Measured("promptlab", summary["n"], wall, summary["seconds"], summary["accuracy"], summary["dtype"],
                    _LOADS[-1], _CPU[-1])


def run_bare(task: str, data: Path, batch_size: int, dtype: str, device: str) -> Measured:
    wall, stdout = timed([sys.executable, __file__, "bare", "--data", str(data), "--batch-size", str(batch_size),
                          "--dtype", dtype, "--device", device])
    summary = json.loads(stdout.strip().splitlines()[-1])
    return Measured("bare forward", summary["n"], wall, summary["seconds"], None, summary["dtype"], _LOADS[-1],
                    _CPU[-1])


def run_training_step(dtype: str, device: str, repeats: int) -> dict:
    _, stdout = timed([sys.executable, str(Path(__file__).with_name("fewshot_step.py")), "--dtype", dtype,
                       "--device", device, "--repeats", str(repeats)])
    return {**json.loads(stdout.strip().splitlines()[-1]), "load": _LOADS[-1]}


def run_task_accuracy(task: str, limit: int, dtype: str, device: str) -> dict:
    """Zero-shot as a user runs it: template t1, the default verbalizer, contextual calibration."""
    wall, stdout = timed([sys.executable, "-m", "promptlab", "zeroshot", "--task", task, "--template", "t1",
                          "--limit", str(limit), "--model", MODEL, "--device", device, "--dtype", dtype, "--json"])
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {key: summary[key] for key in ("task", "verbalizer", "n", "dtype", "accuracy", "macro_f1", "seconds",
                                          "examples_per_second")} | {"wall_s": round(wall, 1), "load": _LOADS[-1]}


def run_fewshot(dtype: str, device: str) -> dict:
    wall, stdout = timed([sys.executable, "-m", "promptlab", *FEWSHOT, "--model", MODEL, "--device", device,
                          "--dtype", dtype, "--json"])
    summary = json.loads(stdout.strip().splitlines()[-1])
    seed = summary["per_seed"][0]
    return {"dtype": summary["dtype"], "wall_s": round(wall, 1), "seconds": summary["seconds"],
            "accuracy": summary["accuracy_mean"], "zero_shot_accuracy": summary["zero_shot_accuracy"],
            "train_steps": seed["train_steps"], "seconds_per_step": seed["seconds_per_step"],
            "seed_seconds": seed["seconds"], "load": _LOADS[-1]}


CONTENDERS = {"promptlab": run_promptlab, "bare": run_bare}


def run_lm_eval(task: str, data: Path, batch_size: int, folder: Path, python: str, dtype: str) -> Measured:
    from promptlab.backends.models import resolve_model

    words, space = label_words(task)
    name = f"promptlab_speed_{task}"
    tasks = folder / "lm_eval_tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / f"{name}.yaml").write_text(LM_EVAL_TASK.format(
        name=name, data=data, choices=json.dumps(words), delimiter=json.dumps(space)))
    results = folder / f"lm_eval_{task}_{len(_LOADS)}"  # a folder per run: each reads its own results
    wall, _ = timed([python, "-m", "lm_eval", "run", "--model", "hf", "--model_args",
                     f"pretrained={resolve_model(MODEL)[0]},dtype={dtype}", "--tasks", name, "--include_path",
                     str(tasks), "--device", "cpu", "--batch_size", str(batch_size), "--output_path", str(results)],
                    env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    report = json.loads(next(results.rglob("results_*.json")).read_text())
    n = sum(1 for _ in data.open())
    return Measured(f"lm-eval {_lm_eval_version(python)}", n, wall, float(report["total_evaluation_time_seconds"]),
                    report["results"][name]["acc,none"], dtype, load=_LOADS[-1], cpu_s=_CPU[-1])


def _lm_eval_version(python: str) -> str | None:
    """lm_eval's version in the interpreter `python` (its own venv, never promptlab's), or None."""
    done = subprocess.run([python, "-c", "from importlib.metadata import version; print(version('lm_eval'))"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


# ---------------------------------------------------------------- reporting

def table(task: str, rows: list[Measured]) -> str:
    base = rows[0]  # the first contender in the first dtype
    lines = [f"\n{task}: {BENCHMARKS[task][2]}, n = {base.n}",
             f"{'contender':<16}{'dtype':>9}{'wall s':>9}{'cpu s':>9}{'scoring s':>11}{'ex/s':>9}{'accuracy':>10}"
             f"{'ex/s / first':>14}{'load':>7}"]
    for row in rows:
        accuracy = "-" if row.accuracy is None else f"{100 * row.accuracy:.2f}"
        scoring = "-" if row.scoring_s is None else f"{row.scoring_s:.1f}"
        cpu = "-" if row.cpu_s is None else f"{row.cpu_s:.1f}"
        lines.append(f"{row.contender:<16}{row.dtype:>9}{row.wall_s:>9.1f}{cpu:>9}{scoring:>11}"
                     f"{row.examples_per_s:>9.2f}"
                     f"{accuracy:>10}{row.examples_per_s / base.examples_per_s:>14.2f}{row.load:>7.1f}")
    return "\n".join(lines)


def rows_table(title: str, rows: list[dict], columns: list[str]) -> str:
    lines = [f"\n{title}", "".join(f"{column:>20}" for column in columns)]
    lines += ["".join(f"{row.get(column, '-')!s:>20}" for column in columns) for row in rows]
    return "\n".join(lines)


def best_of(runs: list[Measured]) -> Measured:
    """The fastest repeat: on a shared machine the slower ones measured the neighbours."""
    return min(runs, key=lambda run: run.wall_s)


@click.group(invoke_without_command=True)
@click.option("--tasks", default="snips,sentiment", show_default=True, help="Tasks of the zero-shot speed axis (snips, sentiment, banking77).")
@click.option("--limit-mr", default=2000, show_default=True, help="MR test examples (2000 = all).")
@click.option("--limit-banking", default=100, show_default=True, help="Banking77 test examples (3080 = all).")
@click.option("--limit-snips", default=400, show_default=True, help="SNIPS examples (test first, then train).")
@click.option("--batch-size", default=32, show_default=True, help="The same for every contender.")
@click.option("--dtypes", default="float32,auto", show_default=True,
              help="--dtype values compared; auto is what promptlab picks on this machine.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--contenders", default="promptlab,bare", show_default=True,
              help="Of the zero-shot speed axis: promptlab, bare (lm-eval: see --lm-eval).")
@click.option("--repeats", default=1, show_default=True, help="Rounds of all contenders; the fastest of each is kept.")
@click.option("--lm-eval/--no-lm-eval", "with_lm_eval", default=True, show_default=True,
              help="Run lm-evaluation-harness too (in every round), when installed.")
@click.option("--lm-eval-dtypes", default="float32", show_default=True,
              help="lm-eval's dtype= values (float32, bfloat16), each a contender.")
@click.option("--lm-eval-python", default=sys.executable, show_default="this interpreter",
              help="The Python of the venv that has lm_eval (keep it out of promptlab's).")
@click.option("--training-repeats", default=3, show_default=True, help="Training steps timed per dtype (0: none).")
@click.option("--accuracy-limit", default=0, show_default=True,
              help="Zero-shot accuracy of every built-in task on its first N test examples per dtype (0: none).")
@click.option("--accuracy-tasks", default=None, help="Comma-separated tasks of the accuracy axis [default: every built-in].")
@click.option("--fewshot/--no-fewshot", "with_fewshot", default=False, show_default=True,
              help="Time the few-shot command per dtype.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write all measurements as JSON.")
@click.pass_context
def main(ctx, tasks, limit_mr, limit_banking, limit_snips, batch_size, dtypes, device, contenders, repeats,
         with_lm_eval, lm_eval_dtypes, lm_eval_python,
         training_repeats, accuracy_limit,
         accuracy_tasks, with_fewshot, output):
    if ctx.invoked_subcommand:
        return
    dtype_list = dtypes.split(",")
    with_lm_eval = with_lm_eval and _lm_eval_version(lm_eval_python) is not None
    results = {"batch_size": batch_size, "model": MODEL, "device": device, "cpu_count": os.cpu_count(),
               "threads": os.environ.get("OMP_NUM_THREADS"), "load_at_start": os.getloadavg()[0]}

    def save() -> None:  # often, so a stopped run keeps what it measured
        if output:
            Path(output).write_text(json.dumps({**results, "load_now": os.getloadavg()[0]}, indent=2))

    if accuracy_limit:
        from promptlab.catalog.catalog import Catalog
        from promptlab.catalog.task import DEFAULT_KIND
        catalog = Catalog.from_options(())
        # every built-in text task: entity tasks report F1 over spans, measured in docs/results.md instead
        task_names = (accuracy_tasks.split(",") if accuracy_tasks else
                      [name for name in catalog.task_names() if catalog.task(name).kind == DEFAULT_KIND])
        results["accuracy"] = []
        for task in task_names:
            for dtype in dtype_list:
                try:
                    measured = run_task_accuracy(task, limit_mr if task == "sentiment" else accuracy_limit, dtype,
                                                 device)
                except click.ClickException as error:  # e.g. an online-only task on a machine without the hub
                    click.echo(f"skipped {task}: {error.message.splitlines()[-2:]}", err=True)
                    measured = {"task": task, "dtype": dtype, "skipped": error.message.splitlines()[-2]}
                results["accuracy"].append(measured)
                save()
        click.echo(rows_table("zero-shot accuracy (t1, default verbalizer, contextual)", results["accuracy"],
                              ["task", "n", "dtype", "accuracy", "examples_per_second", "load"]))
    results["zeroshot"] = {}
    with tempfile.TemporaryDirectory(prefix="promptlab-speed-") as scratch:
        for task in [task for task in tasks.split(",") if task]:
            limits = {"sentiment": limit_mr, "banking77": limit_banking, "snips": limit_snips}
            data = export_examples(task, limits, Path(scratch))
            chosen = [CONTENDERS[name] for name in contenders.split(",")]
            lm_eval = (lambda task, data, batch_size, dtype, device: run_lm_eval(
                task, data, batch_size, Path(scratch), lm_eval_python, dtype))
            lm_eval_list = lm_eval_dtypes.split(",") if with_lm_eval else []
            pairs = []  # each promptlab dtype, then an lm-eval dtype: the two sides of a ratio run back to back
            for index in range(max(len(dtype_list), len(lm_eval_list))):
                pairs += [(contender, dtype) for dtype in dtype_list[index:index + 1] for contender in chosen]
                pairs += [(lm_eval, dtype) for dtype in lm_eval_list[index:index + 1]]
            runs = []
            for _ in range(repeats):
                runs.append([])
                for contender, dtype in pairs:
                    runs[-1].append(contender(task, data, batch_size, dtype, device))
                    results.setdefault("rounds", {})[task] = [[asdict(row) for row in round_] for round_ in runs]
                    save()  # after every process: a stopped run keeps what it measured
            rows = [best_of([round_[i] for round_ in runs]) for i in range(len(pairs))]
            click.echo(table(task, rows))
            results["zeroshot"][task] = [{**asdict(row), "examples_per_s": row.examples_per_s} for row in rows]
            save()
    if training_repeats:
        results["training"] = [run_training_step(dtype, device, training_repeats) for dtype in dtype_list]
        click.echo(rows_table("training step (soft prompt, batch 32)", results["training"],
                              ["dtype", "train_step_s", "bare_forward_backward_s", "train_step_over_bare", "load"]))
        save()
    if with_fewshot:
        results["fewshot"] = [run_fewshot(dtype, device) for dtype in dtype_list]
        click.echo(rows_table(" ".join(FEWSHOT), results["fewshot"],
                              ["dtype", "wall_s", "accuracy", "seconds_per_step", "load"]))
    results["load_at_end"] = os.getloadavg()[0]
    save()


@main.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--batch-size", default=32)
@click.option("--dtype", default="float32")
@click.option("--device", default="cpu")
def bare(data, batch_size, dtype, device):
    """The bare forward: the model on every prompt once, nothing else timed."""
    import torch

    from promptlab.backends.models import load_model

    contexts = [json.loads(line)["context"] for line in Path(data).open()]
    loaded = load_model(MODEL, device=device, dtype=dtype)
    tokenizer, model = loaded.tokenizer, loaded.model  # load_model set left padding
    started = time.perf_counter()
    rows = sorted(tokenizer(contexts, add_special_tokens=False)["input_ids"], key=len)
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            padded = tokenizer.pad({"input_ids": rows[start:start + batch_size]}, padding=True,
                                   return_tensors="pt").to(loaded.device)
            positions = (padded["attention_mask"].cumsum(1) - 1).clamp(min=0)
            model(**padded, position_ids=positions, logits_to_keep=1).logits.float().cpu()
    click.echo(json.dumps({"n": len(rows), "dtype": loaded.dtype, "seconds": round(time.perf_counter() - started, 3)}))


if __name__ == "__main__":
    main()
