"""What a suite's unit gets from the runner (promptlab.evaluation.runner) to run on: its task's data and its model.

Each kind's unit module (text.py, entities.py: `load_suite_data`, `run_unit`) builds a `TaskData` and runs on a
`SharedModel`; `scalar_details` picks what a method reported beyond a row's own fields.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

from promptlab.backends import make_backend
from promptlab.backends.cached import CachedScores
from promptlab.backends.models import LoadedModel, load_model, weights_digest
from promptlab.catalog.template import Prompt

TEST_SAMPLE_SEED = 0  # the `limit` sample of a test split: fixed, so every unit sees the same examples


@dataclass
class TaskData:
    test: list[dict]
    train: list[dict] | None  # None when no run of the task needs training examples
    prompts: dict[str, list[Prompt]] = field(default_factory=dict)  # template name -> rendered prompt inputs

    def hashes(self, k: int) -> dict[str, str]:
        """The hashes of the examples a run with this k reads: the test sample, and the train pool when k > 0."""
        hashes = {"test": _examples_hash(self.test)}
        if k > 0:
            hashes["train"] = _examples_hash(self.train)
        return hashes


def _examples_hash(examples: list[dict]) -> str:
    return hashlib.sha256(json.dumps(examples, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def scalar_details(result: dict, known: tuple[str, ...]) -> dict:
    """What a method reported beyond the fields a row keeps under their own names: its other scalars."""
    return {name: value for name, value in result.items()
            if name not in known and isinstance(value, (int, float, str, bool))}


class SharedModel:
    """A model name of the suite, as its units use it: loaded once, on first use.

    Units that score through the language model share `loaded` and `backend` (zero-shot units
    differing only in calibration or aggregation score the same prompts once); a method that loads
    the model its own way (a kind's `own_models`, promptlab.kinds) fingerprints it with its own function.
    """

    def __init__(self, name: str, *, device: str = "auto", dtype: str | None = None):
        self.name, self.device, self.dtype = name, device, dtype
        self._loaded: LoadedModel | None = None
        self._backend: CachedScores | None = None
        self._fingerprints: dict[Callable | None, str] = {}
        self.as_loaded = ""  # the digest of every weight at load: what units must leave them at

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(self.name, device=self.device, dtype=self.dtype)
            self.as_loaded = weights_digest(self._loaded.model)
        return self._loaded

    @property
    def backend(self) -> CachedScores:
        if self._backend is None:
            loaded = self.loaded
            self._backend = CachedScores(make_backend(loaded.model, loaded.tokenizer, loaded.kind, loaded.device))
        return self._backend

    def fingerprint(self, own: Callable[[str, str], str] | None = None) -> str:
        """The fingerprint of the weights this name loads now: as the shared language model, or by `own`."""
        if own not in self._fingerprints:
            self._fingerprints[own] = self.loaded.fingerprint if own is None else own(self.name, self.device)
        return self._fingerprints[own]

    def check_untouched(self, what: str, unit: str) -> None:
        # Units share the loaded model; weights left changed by one would silently skew every later one.
        if self._loaded is not None and weights_digest(self._loaded.model) != self.as_loaded:
            raise RuntimeError(f"{what} left the model's weights changed ({unit})")
