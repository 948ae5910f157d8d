"""The reports of a continual run: matrix.csv, summary.json, heatmap.png, curve.png and report.md.

Everything is computed from the rows of results.jsonl, so a partial run (some strategies or seeds
finished) reports what it has. Matrices are averaged over seeds entry by entry; the metrics are
computed per seed, then averaged (with the sample std over seeds).
"""
from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path

import numpy as np

from promptlab.continual import forgetting as metrics
from promptlab.continual.sequence import ROUTER, STRATEGY, ZERO_SHOT
from promptlab.metrics.text import seed_std
from promptlab.runtime.outputs import write_atomic, write_json

MATRIX_FILE, SUMMARY_FILE, HEATMAP_FILE, CURVE_FILE, REPORT_FILE = (
    "matrix.csv", "summary.json", "heatmap.png", "curve.png", "report.md")


def summarize(rows: list[dict], *, suite: str, tasks: list[str]) -> dict:
    """summary.json: per strategy, the seed-averaged matrix and metrics; the zero-shot and routing references."""
    zero_shot = next((row["accuracy"] for row in rows if row["kind"] == ZERO_SHOT), None)
    routers = {row["seed"]: row for row in rows if row["kind"] == ROUTER}
    strategies: dict[str, dict] = {}
    for name in dict.fromkeys(row["strategy"] for row in rows if row["kind"] == STRATEGY):
        runs = [row for row in rows if row["kind"] == STRATEGY and row["strategy"] == name]
        per_seed = [_seed_metrics(row, zero_shot, routers.get(row["seed"])) for row in runs]
        summary = {key: _mean([seed[key] for seed in per_seed]) for key in per_seed[0] if key != "seed"}
        summary.update({f"{key}_std": _std([seed[key] for seed in per_seed]) for key in ("average_accuracy", "bwt")})
        summary.update(seeds=[row["seed"] for row in runs], per_seed=per_seed,
                       matrix=metrics.mean_matrix([row["matrix"] for row in runs]),
                       trainable_parameters=runs[0]["trainable_parameters"],
                       seconds=round(statistics.mean(row["seconds"] for row in runs), 1),
                       seconds_per_step=round(statistics.mean(s for row in runs for s in row["seconds_per_step"]), 3),
                       options=runs[0]["options"])
        strategies[name] = summary
    routing = [row["routing_accuracy"] for row in routers.values()]
    return {"suite": suite, "tasks": tasks, "zero_shot_accuracy": zero_shot,
            "routing_accuracy": _mean(routing), "strategies": strategies}


def _seed_metrics(row: dict, zero_shot: list[float] | None, router: dict | None) -> dict:
    matrix = row["matrix"]
    result = {"seed": row["seed"], "average_accuracy": metrics.average_accuracy(matrix),
              "bwt": metrics.backward_transfer(matrix),
              "fwt": metrics.forward_transfer(matrix, zero_shot) if zero_shot else None}
    if router is not None:  # a test example counts when it is routed to its own task and classified right
        result["accuracy_with_routing"] = statistics.mean(
            statistics.mean(correct and routed == task for correct, routed in zip(row["final_correct"][task], picks))
            for task, picks in enumerate(router["routed"]))
    return result


def _mean(values: list) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.mean(values) if values else None


def _std(values: list) -> float | None:
    values = [value for value in values if value is not None]
    return seed_std(values) if values else None


# ---------------------------------------------------------------- files

def matrix_csv(summary: dict) -> str:
    """One row per (strategy, task learned): the seed-averaged accuracy on every task; blank where not measured."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    tasks = summary["tasks"]
    writer.writerow(["strategy", "after_task", *tasks])
    for name, strategy in summary["strategies"].items():
        for task, row in zip(tasks, strategy["matrix"]):
            writer.writerow([name, task, *("" if value is None else f"{value:.4f}" for value in row)])
    return buffer.getvalue()


def _figure_bytes(figure) -> bytes:
    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def heatmap_png(summary: dict) -> bytes:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    names, tasks = list(summary["strategies"]), summary["tasks"]
    figure, axes = plt.subplots(1, max(len(names), 1), figsize=(3.2 * max(len(names), 1), 3.4), squeeze=False)
    for axis, name in zip(axes[0], names):
        values = np.array([[np.nan if v is None else v for v in row] for row in summary["strategies"][name]["matrix"]])
        axis.imshow(values, vmin=0, vmax=1, cmap="viridis")
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8,
                          color="white" if value < 0.6 else "black")
        axis.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=8)
        axis.set_yticks(range(len(tasks)), tasks, fontsize=8)
        axis.set_xlabel("tested on")
        axis.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("after learning")
    figure.suptitle(f"{summary['suite']}: accuracy after each task", fontsize=10)
    return _figure_bytes(figure)


def curve_png(summary: dict) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = summary["tasks"]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for name, strategy in summary["strategies"].items():
        axis.plot(range(1, len(tasks) + 1), metrics.seen_average(strategy["matrix"]), marker="o", label=name)
    axis.set_xticks(range(1, len(tasks) + 1), [f"{i}: {task}" for i, task in enumerate(tasks, start=1)])
    axis.set_xlabel("tasks learned")
    axis.set_ylabel("mean accuracy on the tasks seen")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower left")
    axis.set_title(f"{summary['suite']}: accuracy on the tasks seen so far", fontsize=10)
    return _figure_bytes(figure)


def report_markdown(summary: dict, *, description: str) -> str:
    tasks = summary["tasks"]
    parts = [f"# Continual learning: {summary['suite']}", ""]
    if description:
        parts += [description.strip(), ""]
    parts += [f"Tasks, in the order they are learned: {' → '.join(tasks)}.", "",
              "| strategy | average accuracy | BWT | FWT | accuracy with routing | trainable parameters | s/step |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in summary["strategies"].items():
        parts.append(f"| {name} | {_fmt(s['average_accuracy'], s['average_accuracy_std'])} | "
                     f"{_fmt(s['bwt'], s['bwt_std'], signed=True)} | {_fmt(s['fwt'], signed=True)} | "
                     f"{_fmt(s.get('accuracy_with_routing'))} | {s['trainable_parameters']:,} | "
                     f"{s['seconds_per_step']} |")
    parts += ["", f"Routing accuracy (task picked from frozen features): {_fmt(summary['routing_accuracy'])}. "
              "Zero-shot accuracy of the untrained model (FWT's reference): "
              + ", ".join(f"{task} {_fmt(value)}"
                          for task, value in zip(tasks, summary["zero_shot_accuracy"] or [])) + ".",
              "", f"![accuracy matrices]({HEATMAP_FILE})", "", f"![learning curve]({CURVE_FILE})", ""]
    for name, s in summary["strategies"].items():
        parts += [f"## {name}", "", "| after learning | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
        parts += [f"| {task} | " + " | ".join("" if v is None else f"{v:.3f}" for v in row) + " |"
                  for task, row in zip(tasks, s["matrix"])]
        parts.append("")
    parts += ["Average accuracy: mean over tasks after the last one. BWT: mean change on each earlier task between "
              "learning it and the end (negative = forgetting). FWT: accuracy on a task just before learning it, "
              "minus the untrained model's. Mean ± std over seeds; every unit in results.jsonl.", ""]
    return "\n".join(parts)


def _fmt(value: float | None, std: float | None = None, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    return text + (f" ± {std:.3f}" if std else "")


def write_reports(rows: list[dict], output: Path, *, suite: str, tasks: list[str],
                  description: str) -> tuple[dict, list[Path]]:
    summary = summarize(rows, suite=suite, tasks=tasks)
    paths = [output / name for name in (MATRIX_FILE, SUMMARY_FILE, HEATMAP_FILE, CURVE_FILE, REPORT_FILE)]
    write_atomic(paths[0], matrix_csv(summary).encode())
    write_json(paths[1], summary)
    write_atomic(paths[2], heatmap_png(summary))
    write_atomic(paths[3], curve_png(summary))
    write_atomic(paths[4], report_markdown(summary, description=description).encode())
    return summary, paths
