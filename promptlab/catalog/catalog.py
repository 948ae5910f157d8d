"""Catalogs: folders of task, template, verbalizer, suite and answer files, looked up by name.

The built-in catalog ships inside the package; `PROMPTLAB_PATH` (os.pathsep-separated) and
`--catalog DIR` add more. Later catalogs override earlier ones name by name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from promptlab.errors import UserError, unknown
from promptlab.catalog.answers import Answers, load_answers
from promptlab.catalog.task import Task, load_task
from promptlab.catalog.template import Template, load_template
from promptlab.catalog.verbalizer import Verbalizer, load_verbalizer

CATALOG_FOLDERS = ("tasks", "templates", "verbalizers", "eval_suites", "answers")
_PACKAGE = Path(__file__).resolve().parents[1]  # promptlab/


def builtin_catalog() -> Path:
    """`promptlab/_catalog` in an installed wheel; the repository root in a source checkout."""
    packaged = _PACKAGE / "_catalog"
    return packaged if packaged.is_dir() else _PACKAGE.parent


@dataclass(frozen=True)
class Catalog:
    roots: tuple[Path, ...]

    @classmethod
    def from_options(cls, extra: Iterable[str | Path] = ()) -> "Catalog":
        env = [entry for entry in os.environ.get("PROMPTLAB_PATH", "").split(os.pathsep) if entry]
        roots = [builtin_catalog()]
        for origin, entries in (("PROMPTLAB_PATH", env), ("--catalog", list(extra))):
            for entry in entries:
                root = Path(entry).expanduser()
                if not root.is_dir():
                    raise UserError(f"catalog folder '{entry}' (from {origin}) does not exist",
                                    fix="give a folder that holds tasks/, templates/ or verbalizers/")
                if not any((root / folder).is_dir() for folder in CATALOG_FOLDERS):
                    raise UserError(f"'{entry}' (from {origin}) holds none of {', '.join(CATALOG_FOLDERS)}",
                                    fix="a catalog folder holds tasks/, templates/, verbalizers/ or eval_suites/")
                roots.append(root.resolve())
        return cls(tuple(roots))

    def _files(self, folder: str, pattern: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for root in self.roots:  # later roots override earlier ones
            for path in sorted((root / folder).glob(pattern)):
                found[path.stem] = path
        return found

    # tasks
    def task_names(self) -> list[str]:
        return sorted(self._files("tasks", "*.yaml"))

    def task(self, name: str) -> Task:
        files = self._files("tasks", "*.yaml")
        if name not in files:
            error = unknown("task", name, files)
            error.fix += (f"; tasks are read from tasks/*.yaml in the built-in catalog, in folders given with "
                          f"--catalog DIR and in PROMPTLAB_PATH (searched here: {', '.join(map(str, self.roots))})")
            raise error
        return load_task(files[name])

    # templates
    def template_files(self, task: str) -> dict[str, Path]:
        return self._files(f"templates/{task}", "*.jinja")

    def default_template(self, task: Task) -> str:
        """The task's `template:` key, else its only template."""
        files = self.template_files(task.name)
        if task.template is not None:
            if task.template not in files:
                raise unknown(f"template of task '{task.name}' (its default, named by 'template:')", task.template,
                              files, where=task.path)
            return task.template
        if len(files) == 1:
            return next(iter(files))
        if not files:
            raise UserError(f"task '{task.name}' has no template", fix=f"write templates/{task.name}/t1.jinja in a catalog")
        raise UserError(f"task '{task.name}' has several templates and names no default",
                        fix="pass --template " + "|".join(sorted(files)) + f", or add  template: NAME  to {task.path}")

    def template(self, task: str, name: str) -> Template:
        files = self.template_files(task)
        if name not in files:
            raise unknown(f"template of task '{task}'", name, files)
        return load_template(files[name], task=task)

    # verbalizers
    def verbalizer_files(self, task: str) -> dict[str, Path]:
        return self._files(f"verbalizers/{task}", "*.yaml")

    def verbalizer(self, task: Task, name: str | None = None) -> Verbalizer:
        """The named verbalizer; without a name, `default`, else the only one."""
        files = self.verbalizer_files(task.name)
        if name is None:
            if "default" in files:
                name = "default"
            elif len(files) == 1:
                name = next(iter(files))
            elif not files:
                raise UserError(f"task '{task.name}' has no verbalizer",
                                fix=f"write verbalizers/{task.name}/default.yaml in a catalog")
            else:
                raise UserError(f"task '{task.name}' has several verbalizers and none is named 'default'",
                                fix="pass --verbalizer " + "|".join(sorted(files)))
        if name not in files:
            raise unknown(f"verbalizer of task '{task.name}'", name, files)
        return load_verbalizer(files[name], task=task.name, labels=task.answer_labels)

    # suites
    def suite_files(self) -> dict[str, Path]:
        return self._files("eval_suites", "*.yaml")

    # answers (the assistant: promptlab.apply.assist)
    def answer_files(self, task: str) -> dict[str, Path]:
        return self._files(f"answers/{task}", "*.yaml")

    def answers(self, task: Task, name: str | None = None) -> Answers:
        """The named answer file; without a name, `default`, else the only one."""
        files = self.answer_files(task.name)
        if name is None:
            if "default" not in files and len(files) != 1:
                raise UserError(f"task '{task.name}' has {'no answer file' if not files else 'several answer files'}"
                                " and none is named 'default'",
                                fix="pass --answers " + "|".join(sorted(files)) if files else
                                f"write answers/{task.name}/default.yaml in a catalog")
            name = "default" if "default" in files else next(iter(files))
        if name not in files:
            raise unknown(f"answer file of task '{task.name}'", name, files)
        return load_answers(files[name], task=task.name, labels=task.labels)


@dataclass(frozen=True)
class Setup:
    """The files that define a classifier: task, template and verbalizer."""

    task: Task
    template: Template
    verbalizer: Verbalizer

    @classmethod
    def load(cls, catalog: Catalog, task: str, template: str | None = None, verbalizer: str | None = None) -> Setup:
        """Template and verbalizer left out are the task's defaults."""
        loaded_task = catalog.task(task)
        template = template or catalog.default_template(loaded_task)
        return cls(loaded_task, catalog.template(task, template), catalog.verbalizer(loaded_task, verbalizer))

    @classmethod
    def for_run(cls, catalog: Catalog, task: str | None, template: str | None, verbalizer: str | None, *,
                saved=None) -> Setup:
        """Names left out come from a trained artefact when there is one (the files it was trained with)."""
        meta = saved.metadata if saved is not None else {}
        if task is None and not meta:
            raise UserError("no task given", fix="pass --task NAME, or --trained DIR (which names its task)")
        same_task = task is None or task == meta.get("task")
        return cls.load(catalog, task or meta["task"], template or (meta.get("template") if same_task else None),
                        verbalizer or (meta.get("verbalizer") if same_task else None))

    def describe(self) -> dict:
        return {"task": self.task.name, "template": self.template.name, "template_hash": self.template.content_hash,
                "verbalizer": self.verbalizer.name, "verbalizer_hash": self.verbalizer.content_hash}
