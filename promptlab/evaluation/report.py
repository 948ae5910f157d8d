"""Reports of a suite's rows: summary.csv, kshot_curve.png and report.md.

- summary.csv: one line per task, model, template, verbalizer, method and k, with the mean and
  sample standard deviation over seeds of each metric (zero-shot runs are deterministic: one run);
  a metric the task's kind does not record (accuracy of an entity task) is left empty.
- kshot_curve.png: per task, the first of the metrics its rows have (accuracy; F1 for entity tasks)
  against k, one panel per task, one line per method (and model, when a method runs on several)
  averaged over templates, verbalizers and seeds, with a +-std band. A zero-shot method is a point
  at k=0 (with an error bar over templates) continued as a dashed level across the panel; chance
  (for accuracy and macro-F1) is dotted.
- report.md: per-task tables of the same curve numbers, the picture, and every summary line.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from promptlab.catalog.task import DEFAULT_KIND
from promptlab.kinds import KINDS
from promptlab.metrics.text import seed_std
from promptlab.runtime.outputs import write_atomic

SUMMARY_FILE = "summary.csv"
CURVE_FILE = "kshot_curve.png"
REPORT_FILE = "report.md"
SUMMARY_GROUP = ("task", "model", "template", "verbalizer", "label", "k")
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "f1": "F1", "precision": "precision",
                "recall": "recall"}
CHANCE_METRICS = ("accuracy", "macro_f1")  # where guessing uniformly scores 1 / number of labels


@dataclass(frozen=True)
class Cell:
    """The runs that share one group (e.g. task, model, method and k): their number, mean and std per metric
    that every one of them records."""

    group: tuple
    runs: int
    mean: dict[str, float]
    std: dict[str, float]
    seconds: float  # mean seconds per run


def cells(rows: list[dict], group: Iterable[str], metrics: Iterable[str]) -> list[Cell]:
    """Rows grouped by the `group` fields, in order of first appearance, with mean and std of each metric."""
    group, metrics = tuple(group), tuple(metrics)
    grouped: dict[tuple, list[dict]] = {}
    for row in rows:
        grouped.setdefault(tuple(row[name] for name in group), []).append(row)
    return [Cell(key, len(members),
                 {metric: statistics.fmean(_values(members, metric)) for metric in _recorded(members, metrics)},
                 {metric: seed_std(_values(members, metric)) for metric in _recorded(members, metrics)},
                 statistics.fmean(row["seconds"] for row in members))
            for key, members in grouped.items()]


def _recorded(rows: list[dict], metrics: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(metric for metric in metrics if all(metric in row["metrics"] for row in rows))


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _plotted(rows: list[dict], task: str, metrics: tuple[str, ...]) -> str:
    """The metric a task's panel and tables lead with: the first of `metrics` its rows record."""
    return _recorded([row for row in rows if row["task"] == task], metrics)[0]


def _values(rows: list[dict], metric: str) -> list[float]:
    return [row["metrics"][metric] for row in rows]


def _ordered(rows: list[dict]) -> list[dict]:
    """Rows sorted for reading: task, model, template, verbalizer as first met; method as first met; then k."""
    first: dict[tuple, int] = {}
    for row in rows:
        for name in SUMMARY_GROUP[:-1]:
            first.setdefault((name, row[name]), len(first))
    return sorted(rows, key=lambda row: (*(first[(name, row[name])] for name in SUMMARY_GROUP[:-1]), row["k"]))


# ---------------------------------------------------------------- summary.csv

def summary_csv(rows: list[dict], metrics: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*SUMMARY_GROUP[:-2], "method", "k", "runs",
                     *(f"{metric}_{stat}" for metric in metrics for stat in ("mean", "std")), "seconds_mean"])
    for cell in cells(_ordered(rows), SUMMARY_GROUP, metrics):
        writer.writerow([*cell.group, cell.runs,
                         *(f"{stat[metric]:.4f}" if metric in cell.mean else "" for metric in metrics
                           for stat in (cell.mean, cell.std)),
                         f"{cell.seconds:.2f}"])
    return out.getvalue()


# ---------------------------------------------------------------- kshot_curve.png

def curve_cells(rows: list[dict], metrics: tuple[str, ...]) -> list[Cell]:
    """The plotted numbers: per task, model, method and k, over templates, verbalizers and seeds."""
    return cells(_ordered(rows), ("task", "model", "label", "k"), metrics)


def plot_kshot_curves(rows: list[dict], path: Path, metrics: tuple[str, ...], *, title: str) -> None:
    """Per task, its first recorded metric of `metrics` against k."""
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    curve = curve_cells(rows, metrics)
    tasks = list(dict.fromkeys(cell.group[0] for cell in curve))
    shots = sorted({cell.group[3] for cell in curve})
    several_models = _labels_on_several_models(curve)
    columns = min(3, len(tasks))
    rows_of_panels = math.ceil(len(tasks) / columns)
    figure, axes = plt.subplots(rows_of_panels, columns, squeeze=False, layout="constrained",
                                figsize=(max(4.6 * columns, 7.0), 3.4 * rows_of_panels + 0.8))
    colours = _colours(curve, several_models)
    for axis, task in zip(axes.flat, tasks):
        metric = _plotted(rows, task, metrics)
        _draw_panel(axis, task, [cell for cell in curve if cell.group[0] == task], shots, metric, colours,
                    several_models, _chance(rows, task, metric), _k_unit(rows, task))
    for axis in list(axes.flat)[len(tasks):]:
        axis.set_visible(False)
    figure.suptitle(title)
    handles, labels = _legend_entries(axes.flat)
    figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3 * columns, 5), frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")  # nothing clipped, legend included
    plt.close(figure)
    write_atomic(path, buffer.getvalue())


def _labels_on_several_models(curve: list[Cell]) -> set[str]:
    models: dict[str, set[str]] = {}
    for cell in curve:
        models.setdefault(cell.group[2], set()).add(cell.group[1])
    return {label for label, names in models.items() if len(names) > 1}


def _colours(curve: list[Cell], several_models: set[str]) -> dict[str, str]:
    names = list(dict.fromkeys(_line_name(cell, several_models) for cell in curve))
    palette = [f"C{index % 10}" for index in range(len(names))]
    return dict(zip(names, palette))


def _line_name(cell: Cell, several_models: set[str]) -> str:
    """The method's label, with the model when the same label runs on several models."""
    _, model, label, _ = cell.group
    return f"{label} · {model}" if label in several_models else label


def _chance(rows: list[dict], task: str, metric: str) -> float | None:
    if metric not in CHANCE_METRICS:
        return None
    return 1 / next(row["n_labels"] for row in rows if row["task"] == task)


def _k_unit(rows: list[dict], task: str) -> str:
    return KINDS[next(row.get("kind", DEFAULT_KIND) for row in rows if row["task"] == task)].k_unit


def _draw_panel(axis, task: str, task_cells: list[Cell], shots: list[int], metric: str, colours: dict[str, str],
                several_models: set[str], chance: float | None, k_unit: str) -> None:
    # k values sit at even spacing (0, 4, 8, 16, 32 would crowd on a linear axis; 0 has no log).
    position = {k: index for index, k in enumerate(shots)}
    lines: dict[str, list[Cell]] = {}
    for cell in task_cells:
        lines.setdefault(_line_name(cell, several_models), []).append(cell)
    for name, points in lines.items():
        xs = [position[cell.group[3]] for cell in points]
        means = [cell.mean[metric] for cell in points]
        stds = [cell.std[metric] for cell in points]
        colour = colours[name]
        if xs == [0]:  # zero-shot: a level to read the few-shot lines against
            axis.hlines(means[0], 0, len(shots) - 1, colors=colour, linestyles="dashed", linewidth=1.2)
        if len(xs) == 1:  # a band needs two points; one point gets an error bar
            axis.errorbar(xs, means, yerr=stds, color=colour, capsize=3, linewidth=1.2)
        axis.plot(xs, means, marker="o", color=colour, label=name, linewidth=1.8, markersize=4)
        axis.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                          color=colour, alpha=0.15, linewidth=0)
    if chance is not None:
        axis.axhline(chance, color="grey", linestyle="dotted", linewidth=1, label="chance")
    axis.set_xticks(range(len(shots)), [str(k) for k in shots])
    axis.set_xlabel(f"k ({k_unit})")
    axis.set_ylabel(metric_name(metric))
    axis.set_title(task)
    axis.grid(alpha=0.3)


def _legend_entries(axes) -> tuple[list, list[str]]:
    entries: dict[str, object] = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


# ---------------------------------------------------------------- report.md

def report_markdown(rows: list[dict], *, suite: str, description: str, metrics: tuple[str, ...],
                    ran: int, seconds: float) -> str:
    parts = [f"# Evaluation: {suite}", ""]
    if description:
        parts += [description.strip(), ""]
    parts += [_overview(rows, ran, seconds), "", f"![{_plotted_names(rows, metrics)} against k]({CURVE_FILE})", ""]
    curve = curve_cells(rows, metrics)
    for task in dict.fromkeys(cell.group[0] for cell in curve):
        task_metrics = _recorded([row for row in rows if row["task"] == task], metrics)
        for model in dict.fromkeys(cell.group[1] for cell in curve if cell.group[0] == task):
            parts += _task_tables(task, model, [cell for cell in curve if cell.group[:2] == (task, model)],
                                  task_metrics)
    parts += ["## Every template, verbalizer, method and k", "", _summary_table(rows, metrics), "",
              ("Mean ± sample standard deviation over seeds (task tables: over templates, verbalizers and seeds). "
               "Zero-shot runs are deterministic and run once per template. "
               f"The same numbers are in {SUMMARY_FILE}; every run, with its full configuration, in results.jsonl."),
              ""]
    return "\n".join(parts)


def _overview(rows: list[dict], ran: int, seconds: float) -> str:
    models = ", ".join(sorted({f"{row['model']} ({row['model_kind']}, fingerprint {row['model_fingerprint']})"
                               for row in rows}))
    versions = rows[0]["versions"] if rows else {}
    run_seconds = sum(row["seconds"] for row in rows)
    return (f"{len(rows)} runs ({ran} run now, {len(rows) - ran} found finished); {run_seconds / 60:.1f} min of runs "
            f"in all, this invocation {seconds / 60:.1f} min.  \nModels: {models}.  \n"
            f"Versions: {', '.join(f'{name} {value}' for name, value in versions.items())}.")


def _task_tables(task: str, model: str, task_cells: list[Cell], metrics: tuple[str, ...]) -> list[str]:
    shots = sorted({cell.group[3] for cell in task_cells})
    methods = list(dict.fromkeys(cell.group[2] for cell in task_cells))
    by_key = {(cell.group[2], cell.group[3]): cell for cell in task_cells}
    lines = [f"## {task} · {model}", ""]
    for metric in metrics:
        lines += [f"{metric_name(metric)}, mean ± std (runs):", "",
                  "| method | " + " | ".join(f"k={k}" for k in shots) + " |",
                  "|---|" + "---|" * len(shots)]
        for method in methods:
            lines.append(f"| {method} | " + " | ".join(
                _formatted(by_key[(method, k)], metric) if (method, k) in by_key else "–" for k in shots) + " |")
        lines.append("")
    return lines


def _formatted(cell: Cell, metric: str) -> str:
    return f"{cell.mean[metric]:.3f} ± {cell.std[metric]:.3f} ({cell.runs})"


def _summary_table(rows: list[dict], metrics: tuple[str, ...]) -> str:
    header = ["task", "model", "template", "verbalizer", "method", "k", "runs",
              *(metric_name(metric) for metric in metrics), "s/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells(_ordered(rows), SUMMARY_GROUP, metrics):
        values = [*map(str, cell.group), str(cell.runs),
                  *(f"{cell.mean[metric]:.3f} ± {cell.std[metric]:.3f}" if metric in cell.mean else "–"
                    for metric in metrics), f"{cell.seconds:.1f}"]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def _plotted_names(rows: list[dict], metrics: tuple[str, ...]) -> str:
    tasks = dict.fromkeys(row["task"] for row in rows)
    return " / ".join(dict.fromkeys(metric_name(_plotted(rows, task, metrics)) for task in tasks))


# ---------------------------------------------------------------- all three

def write_reports(rows: list[dict], output: Path, *, suite: str, description: str, metrics: tuple[str, ...],
                  ran: int, seconds: float) -> list[Path]:
    """Write summary.csv, kshot_curve.png and report.md into `output`; return their paths."""
    paths = [output / SUMMARY_FILE, output / CURVE_FILE, output / REPORT_FILE]
    write_atomic(paths[0], summary_csv(rows, metrics).encode())
    models = ", ".join(dict.fromkeys(row["model"].rstrip("/").rsplit("/", 1)[-1] for row in rows))  # short names
    plot_kshot_curves(rows, paths[1], metrics, title=f"{suite}: {_plotted_names(rows, metrics)} against k ({models})")
    write_atomic(paths[2], report_markdown(rows, suite=suite, description=description, metrics=metrics,
                                            ran=ran, seconds=seconds).encode())
    return paths
