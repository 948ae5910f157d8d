"""`promptlab verbalizers search`: LM-BFF's automatic label words, written as a verbalizer file.

Everything the user can get wrong (task, kind, template, name, data, k) is checked before the model
loads; the search itself is promptlab.methods.verbalizer_search.
"""
from __future__ import annotations

import json
import time

import click

from promptlab.methods import verbalizer_search as vs
from promptlab.backends.aliases import DEFAULT_MODEL
from promptlab.backends import make_backend
from promptlab.backends.batching import initial_batch_size
from promptlab.catalog.catalog import Catalog
from promptlab.errors import UserError
from promptlab.catalog.task import DEFAULT_KIND
from promptlab.kinds import kind_of
from promptlab.backends.models import load_model, resolve_model
from promptlab.runtime.outputs import output_folder, write_atomic
from promptlab.data.overlap import train_pool_without_test_texts
from promptlab.methods.pipeline import render_all
from promptlab.runtime.progress import progress_bar
from promptlab.data.sampling import sample_kshot
from promptlab.catalog.verbalizer import load_verbalizer

SHOWN_CANDIDATES = 8  # candidates printed per label; the file's comment has them all


def run_search_command(*, task, template, k, seed, model, candidates, words_per_label, name, output, batch_size,
                       device, dtype, catalogs, as_json) -> None:
    started = time.perf_counter()
    catalog = Catalog.from_options(catalogs)
    loaded_task = catalog.task(task)
    if loaded_task.kind != DEFAULT_KIND:
        kind = kind_of(loaded_task)
        raise UserError(f"verbalizers search does not apply to task '{task}' (kind {kind.name}: {kind.description})",
                        where=loaded_task.path, fix="search label words for a classification task")
    if words_per_label > candidates:
        raise UserError(f"--words-per-label {words_per_label} is more than --candidates {candidates}",
                        fix=f"pass --candidates {words_per_label} or more")
    name = name or f"search-k{k}-seed{seed}"
    vs.check_name(name)
    template_obj = catalog.template(task, template or catalog.default_template(loaded_task))
    default = _comparison_verbalizer(catalog, loaded_task)
    split = _sample(loaded_task, template_obj, k, seed)
    folder = output_folder(output)
    model_name = model or loaded_task.model or DEFAULT_MODEL
    resolve_model(model_name)
    loaded = load_model(model_name, device=device, dtype=dtype)
    backend = make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device)
    size = initial_batch_size(batch_size, loaded.device)
    click.echo(f"{task} · template {template_obj.name} · {loaded.name} ({loaded.kind}, {loaded.device}, "
               f"{loaded.dtype}) · k={k} seed {seed} · {len(split.train)} train + {len(split.dev)} dev examples")
    with progress_bar(len(split.train) + len(split.dev), "vocabulary at the slot", unit="ex") as bar:
        result = vs.search(backend, template_obj, loaded_task.labels, split.train, split.dev, candidates=candidates,
                           words_per_label=words_per_label, batch_size=size, progress=bar.update)
    default_accuracy = (vs.verbalizer_accuracy(backend, template_obj, default, loaded_task.labels, split.train,
                                               split.dev, batch_size=size) if default else None)
    path = vs.verbalizer_path(folder, task, name)
    header = _header(loaded, template_obj.name, k, seed, split.checksum, result, default, default_accuracy)
    write_atomic(path, vs.verbalizer_yaml(result.words, header=header, description=(
        f"Label words searched on {k}-shot seed {seed} with {loaded.name} (promptlab verbalizers search)")).encode())
    load_verbalizer(path, task=task, labels=loaded_task.answer_labels)  # what was written reads back
    _report(result, default, default_accuracy, candidates)
    click.echo(f"wrote {path}\nuse it: promptlab zeroshot --catalog {folder} --task {task} --template "
               f"{template_obj.name} --verbalizer {name}")
    if as_json:
        click.echo(json.dumps({
            "task": task, "template": template_obj.name, "template_hash": template_obj.content_hash,
            "model": loaded.name, "model_fingerprint": loaded.fingerprint, "k": k, "seed": seed,
            "sample_checksum": split.checksum, "name": name, "words": result.words,
            "words_per_label": words_per_label, "candidates": candidates,
            "train_accuracy": result.train_accuracy, "dev_accuracy": result.dev_accuracy,
            "default_verbalizer": default.name if default else None,
            "default_train_accuracy": default_accuracy[0] if default_accuracy else None,
            "default_dev_accuracy": default_accuracy[1] if default_accuracy else None,
            "rounds": result.rounds, "path": str(path), "seconds": round(time.perf_counter() - started, 1)},
            ensure_ascii=False))


def _comparison_verbalizer(catalog: Catalog, task):
    """The verbalizer commands take without --verbalizer ('default', else the only one); None when that
    is not defined (no verbalizer, or several and none named 'default')."""
    files = catalog.verbalizer_files(task.name)
    if "default" in files or len(files) == 1:
        return catalog.verbalizer(task)
    return None


def _sample(task, template, k: int, seed: int):
    """fewshot's k-shot sample: the train split without test texts, k train + k dev per class."""
    kind = kind_of(task)
    train = kind.examples(task, "train")
    test = kind.examples(task, "test") if "test" in task.data else []
    pool = train_pool_without_test_texts(train, test, where=task.path) if test else train
    split = sample_kshot(pool, task.labels, k, seed)
    render_all(template, split.train + split.dev)  # template/data mistakes surface before the model loads
    return split


def _header(loaded, template: str, k: int, seed: int, checksum: str, result, default, default_accuracy) -> list[str]:
    lines = [
        "Written by `promptlab verbalizers search` (LM-BFF automatic label-word selection).",
        f"model: {loaded.name} (fingerprint {loaded.fingerprint}), template: {template}, k: {k}, seed: {seed}, "
        f"sample checksum: {checksum}",
        f"train accuracy {result.train_accuracy:.4f}, dev accuracy {result.dev_accuracy:.4f} "
        "(each label's score minus its mean over the training examples)",
    ]
    if default_accuracy:
        lines.append(f"verbalizer '{default.name}' judged the same way: train accuracy {default_accuracy[0]:.4f}, "
                     f"dev accuracy {default_accuracy[1]:.4f}")
    lines.append("candidates, best first:")
    lines += [f"  {label}: {', '.join(words)}" for label, words in result.candidates.items()]
    return [line.replace("\n", " ") for line in lines]


def _report(result, default, default_accuracy, candidates: int) -> None:
    click.echo(f"candidates (top {candidates} per label of {result.vocabulary} word tokens; mean log-prob in the "
               f"label minus over all training examples):")
    for label, words in result.candidates.items():
        more = f", … ({len(words)})" if len(words) > SHOWN_CANDIDATES else ""
        click.echo(f"  {label}: {', '.join(words[:SHOWN_CANDIDATES])}{more}")
    click.echo(f"chosen ({result.rounds} round(s) of coordinate ascent):")
    for label, words in result.words.items():
        click.echo(f"  {label}: {', '.join(words)}")
    click.echo(f"searched verbalizer: train accuracy {result.train_accuracy:.4f}  dev accuracy "
               f"{result.dev_accuracy:.4f}")
    if default_accuracy:
        click.echo(f"verbalizer '{default.name}':{' ' * max(1, 10 - len(default.name))}train accuracy "
                   f"{default_accuracy[0]:.4f}  dev accuracy {default_accuracy[1]:.4f}   (judged the same way)")
