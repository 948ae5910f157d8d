"""Zero-shot scoring speed, side by side: promptlab, a bare forward, and lm-evaluation-harness.

    python benchmarks/speed.py [--tasks snips,sentiment] [--limit-mr 2000] [--repeats 1] [--output FILE]

For each task every contender runs in its own process, one after another, on the same model,
examples, prompt text and label words (no calibration, one word per label):

- promptlab: `promptlab zeroshot --data <the exported examples> --json`;
- bare forward: the model on the same prompts (the text before the answer slot), length-sorted
  batches, left-padded, logits at the last position only: what scoring cannot beat, because it
  must at least read every prompt once (`python benchmarks/speed.py bare ...`, run by this script);
- lm-evaluation-harness, when `lm_eval` is installed: a multiple_choice task whose context is the
  same prompt text and whose choices are the same words, from the same exported JSONL.

Wall time is the whole process (start-up, model load, scoring); scoring time is what each reports
for the scoring alone (lm-eval reports its evaluation time, model load included). The machine
being shared, compare ratios within one run, never numbers across runs.

Data: SNIPS is the 346 test examples plus the first 54 of train (400); MR is the first
`--limit-mr` test examples. lm-eval is only used here, never a dependency of promptlab.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import click

MODEL = "smollm2-135m"
BENCHMARKS = {  # task -> (template, verbalizer, description)
    "snips": ("t1", "default", "SNIPS, 7 intents named by 2-8 tokens each"),
    "sentiment": ("t1", "lmbff", "MR, 2 single-token labels (terrible / great)"),
}
SNIPS_SIZE = 400
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

    @property
    def examples_per_s(self) -> float:
        return self.n / (self.scoring_s or self.wall_s)


# ---------------------------------------------------------------- the data every contender reads

def export_examples(task: str, limit_mr: int, folder: Path) -> Path:
    """The benchmark's examples as JSONL, with the prompt text and gold index lm-eval needs."""
    from promptlab.backends.inputs import split_trailing_space
    from promptlab.catalog import Catalog, Setup

    template, verbalizer, _ = BENCHMARKS[task]
    setup = Setup.load(Catalog.from_options(()), task, template, verbalizer)
    if task == "snips":
        test = setup.task.examples("test")
        examples = test + setup.task.examples("train", limit=SNIPS_SIZE - len(test))
    else:
        examples = setup.task.examples("test", limit=limit_mr)
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
    from promptlab.catalog import Catalog, Setup

    template, verbalizer, _ = BENCHMARKS[task]
    setup = Setup.load(Catalog.from_options(()), task, template, verbalizer)
    words = [setup.verbalizer.words[label] for label in setup.task.labels]
    assert all(len(choices) == 1 for choices in words), "lm-eval's multiple_choice takes one string per label"
    space = split_trailing_space(setup.template.render({name: "x" for name in setup.template.fields}).before)[1]
    return [choices[0] for choices in words], space


# ---------------------------------------------------------------- contenders, one process each

def timed(command: list[str], **kwargs) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - started
    if done.returncode:
        raise click.ClickException(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def run_promptlab(task: str, data: Path, batch_size: int) -> Measured:
    template, verbalizer, _ = BENCHMARKS[task]
    wall, stdout = timed([sys.executable, "-m", "promptlab", "zeroshot", "--task", task, "--template", template,
                          "--verbalizer", verbalizer, "--data", str(data), "--model", MODEL, "--device", "cpu",
                          "--batch-size", str(batch_size), "--calibrate", "none", "--json"])
    summary = json.loads(stdout.strip().splitlines()[-1])
    return Measured("promptlab", summary["n"], wall, summary["seconds"], summary["accuracy"])


def run_bare(task: str, data: Path, batch_size: int) -> Measured:
    wall, stdout = timed([sys.executable, __file__, "bare", "--data", str(data), "--batch-size", str(batch_size)])
    summary = json.loads(stdout.strip().splitlines()[-1])
    return Measured("bare forward", summary["n"], wall, summary["seconds"], None)


def run_lm_eval(task: str, data: Path, batch_size: int, folder: Path) -> Measured:
    from promptlab.models import resolve_model

    words, space = label_words(task)
    name = f"promptlab_speed_{task}"
    tasks = folder / "lm_eval_tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / f"{name}.yaml").write_text(LM_EVAL_TASK.format(
        name=name, data=data, choices=json.dumps(words), delimiter=json.dumps(space)))
    results = folder / f"lm_eval_{task}"
    wall, _ = timed([sys.executable, "-m", "lm_eval", "run", "--model", "hf", "--model_args",
                     f"pretrained={resolve_model(MODEL)[0]},dtype=float32", "--tasks", name, "--include_path",
                     str(tasks), "--device", "cpu", "--batch_size", str(batch_size), "--output_path", str(results)],
                    env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    report = json.loads(next(results.rglob("results_*.json")).read_text())
    n = sum(1 for _ in data.open())
    return Measured("lm-eval 0.4.13" if _lm_eval_version() == "0.4.13" else f"lm-eval {_lm_eval_version()}", n,
                    wall, float(report["total_evaluation_time_seconds"]), report["results"][name]["acc,none"])


def _lm_eval_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("lm_eval")
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------- reporting

def table(task: str, rows: list[Measured]) -> str:
    base = rows[0]  # promptlab
    lines = [f"\n{task}: {BENCHMARKS[task][2]}, n = {base.n}",
             f"{'contender':<16}{'wall s':>9}{'scoring s':>11}{'ex/s':>9}{'accuracy':>10}"
             f"{'wall / promptlab':>18}{'ex/s / promptlab':>18}"]
    for row in rows:
        accuracy = "-" if row.accuracy is None else f"{100 * row.accuracy:.2f}"
        scoring = "-" if row.scoring_s is None else f"{row.scoring_s:.1f}"
        lines.append(f"{row.contender:<16}{row.wall_s:>9.1f}{scoring:>11}{row.examples_per_s:>9.2f}{accuracy:>10}"
                     f"{row.wall_s / base.wall_s:>18.2f}{row.examples_per_s / base.examples_per_s:>18.2f}")
    return "\n".join(lines)


def best_of(runs: list[Measured]) -> Measured:
    """The fastest repeat: on a shared machine the slower ones measured the neighbours."""
    return min(runs, key=lambda run: run.wall_s)


@click.group(invoke_without_command=True)
@click.option("--tasks", default="snips,sentiment", show_default=True)
@click.option("--limit-mr", default=2000, show_default=True, help="MR test examples (2000 = all).")
@click.option("--batch-size", default=32, show_default=True, help="The same for every contender.")
@click.option("--repeats", default=1, show_default=True, help="Rounds of all contenders; the fastest of each is kept.")
@click.option("--lm-eval/--no-lm-eval", "with_lm_eval", default=True, show_default=True,
              help="Run lm-evaluation-harness too, when installed.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write all measurements as JSON.")
@click.pass_context
def main(ctx, tasks, limit_mr, batch_size, repeats, with_lm_eval, output):
    if ctx.invoked_subcommand:
        return
    with_lm_eval = with_lm_eval and _lm_eval_version() is not None
    results = {}
    with tempfile.TemporaryDirectory(prefix="promptlab-speed-") as scratch:
        for task in tasks.split(","):
            data = export_examples(task, limit_mr, Path(scratch))
            contenders = [run_promptlab, run_bare] + ([_with_folder(run_lm_eval, Path(scratch))] if with_lm_eval else [])
            runs = [[contender(task, data, batch_size) for contender in contenders] for _ in range(repeats)]
            rows = [best_of([round_[i] for round_ in runs]) for i in range(len(contenders))]
            click.echo(table(task, rows))
            results[task] = [{**asdict(row), "examples_per_s": row.examples_per_s} for row in rows]
    if output:
        Path(output).write_text(json.dumps({"batch_size": batch_size, "model": MODEL, "results": results}, indent=2))


def _with_folder(run, folder: Path):
    return lambda task, data, batch_size: run(task, data, batch_size, folder)


@main.command()
@click.option("--data", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--batch-size", default=32)
def bare(data, batch_size):
    """The bare forward: the model on every prompt once, nothing else timed."""
    import torch

    from promptlab.models import load_model

    contexts = [json.loads(line)["context"] for line in Path(data).open()]
    loaded = load_model(MODEL, device="cpu")
    tokenizer, model = loaded.tokenizer, loaded.model  # load_model set left padding
    started = time.perf_counter()
    rows = sorted(tokenizer(contexts, add_special_tokens=False)["input_ids"], key=len)
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            padded = tokenizer.pad({"input_ids": rows[start:start + batch_size]}, padding=True, return_tensors="pt")
            positions = (padded["attention_mask"].cumsum(1) - 1).clamp(min=0)
            model(**padded, position_ids=positions, logits_to_keep=1)
    click.echo(json.dumps({"n": len(rows), "seconds": round(time.perf_counter() - started, 3)}))


if __name__ == "__main__":
    main()
