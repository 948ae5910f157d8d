"""LoRA through `peft`: low-rank adapters on a frozen copy of the model, trained on the cloze objective.

The objective, the k-shot protocol and the dev selection are `finetune`'s (methods.finetune.train_cloze);
only what trains differs: rank-r updates B·A beside the chosen linear layers instead of every weight.
Target modules default to peft's per-architecture choice (the attention query and value projections:
q_proj/v_proj for Llama, c_attn for GPT-2, query/value for BERT); `all-linear` adapts every linear
layer but the output head, and a comma-separated list names modules.

A trained adapter is saved as a standard PEFT folder (`adapter_config.json`,
`adapter_model.safetensors`) that `peft.PeftModel.from_pretrained(base, folder)` loads; the
artefact's `trained.json` beside them ties it to its model, task, template and verbalizer
(promptlab.methods.artefacts), and `apply_lora` puts it back on the base model for predict and serve.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from promptlab.methods.artefacts import Trained
from promptlab.errors import UserError
from promptlab.methods.context import MethodContext, MethodOutcome, require_positive
from promptlab.methods.finetune import FinetuneOptions, cloze_outcome, train_cloze

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
AUTO_TARGETS = "auto"  # peft's default modules for the architecture


@dataclass
class LoraOptions(FinetuneOptions):
    steps: int = 30
    lr: float = 5e-4  # adapters start at zero and are small: they take a larger rate than full fine-tuning
    batch_size: int = 16
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0  # on the adapters' input while training; the model's own dropout stays off
    target_modules: str = AUTO_TARGETS  # auto | all-linear | comma-separated module names

    def __post_init__(self):
        super().__post_init__()
        require_positive("rank", self.rank)
        require_positive("alpha", self.alpha)
        if not 0 <= self.dropout < 1:
            raise UserError(f"option dropout must be in [0, 1), got {self.dropout!r}")


def lora_config(options: LoraOptions, kind: str):
    """The peft LoraConfig for these options; causal models get peft's CAUSAL_LM task type."""
    from peft import LoraConfig, TaskType

    targets = options.target_modules.strip()
    if targets == AUTO_TARGETS:
        target_modules = None
    elif targets == "all-linear":
        target_modules = targets
    else:
        target_modules = [name.strip() for name in targets.split(",") if name.strip()]
    return LoraConfig(r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout,
                      target_modules=target_modules, task_type=TaskType.CAUSAL_LM if kind == "causal" else None)


def add_adapters(model: torch.nn.Module, options: LoraOptions, kind: str, *, seed: int, adapter_name: str = "default"):
    """A PeftModel around `model` (changed in place) with freshly initialised, seeded adapters."""
    from peft import get_peft_model

    torch.manual_seed(seed)  # LoRA's A matrices start random (B at zero)
    try:
        return get_peft_model(model, lora_config(options, kind), adapter_name=adapter_name)
    except ValueError as error:  # e.g. target modules the model does not have
        raise UserError(f"cannot add LoRA adapters: {error}",
                        fix="set target_modules to auto, all-linear or names of the model's linear layers") from None


def run_lora(context: MethodContext) -> MethodOutcome:
    options: LoraOptions = context.options
    loaded = context.loaded
    model = copy.deepcopy(loaded.model).eval()  # peft adds layers in place: the shared model stays as it was
    peft_model = add_adapters(model, options, loaded.kind, seed=context.seed)
    with adapter_dropout(peft_model, options.dropout):
        scorer, result = train_cloze(context, model, peft_model, description=f"lora seed {context.seed}")
    outcome = cloze_outcome(context, scorer, result)
    trainable, total = peft_model.get_nb_trainable_parameters()
    outcome.details.update(trainable_parameters=trainable, total_parameters=total)
    outcome.trained = Trained("lora", state={"trainable_parameters": trainable},
                              scoring={"calibrate": "none", "aggregate": options.aggregate},
                              write_files=lambda folder: save_adapter(peft_model, folder))
    return outcome


@contextlib.contextmanager
def adapter_dropout(peft_model, rate: float) -> Iterator[None]:
    """The adapters' dropout runs while gradients flow (training steps), not in dev and test scoring.

    The model stays in eval mode, so its own dropout never runs: same seed, same numbers.
    """
    def follow_grad_mode(module, _inputs):
        module.train(torch.is_grad_enabled())

    dropouts = [module for name, module in peft_model.named_modules()
                if rate > 0 and name.split(".")[-2:-1] == ["lora_dropout"]]
    hooks = [module.register_forward_pre_hook(follow_grad_mode) for module in dropouts]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for module in dropouts:
            module.eval()


def save_adapter(peft_model, folder: Path) -> Path:
    """The PEFT adapter files, each replaced atomically (the artefact's trained.json follows them)."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".adapter."))
    try:
        peft_model.save_pretrained(staging)
        for name in ADAPTER_FILES:
            os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_adapters(model: torch.nn.Module, folder: Path):
    """The base model (changed in place) with the saved adapters, ready to score."""
    from peft import PeftModel
    return PeftModel.from_pretrained(model, str(folder), is_trainable=False).eval()
