"""Continual-learning strategies: how one model learns task after task, and how it then scores each task.

    strategy.learn(index, context)        train on task `index` (its k-shot split in `context`)
    strategy.scorer(index, setup)         a LabelScorer for task `index` as the strategy stands now

Every strategy trains through the few-shot methods' code (soft prompts, LoRA through peft, cloze
fine-tuning), on the label-word objective, with the dev set of the task being learned picking the step.
A task not learned yet is scored with what was learned last (the latest prompt or adapter, the current
weights): that is what forward transfer measures.

- `prompt-per-task`: a soft prompt per task on the frozen model; task j is scored with its own prompt,
  so nothing learned later can change it (no forgetting by construction).
- `progressive` (Progressive Prompts, Razdaibiedina et al. 2023): task i trains a new prompt in front of
  the frozen prompts of tasks i-1..0, [P_i; P_i-1; ...; P_0]; task j is scored with [P_j; ...; P_0], as
  when it was learned. The model stays frozen.
- `lora-per-task`: a LoRA adapter per task (peft, one model copy holding them all); task j is scored
  with adapter j.
- `finetune-sequential`: one copy of the model fine-tuned on each task in turn: the forgetting baseline.
- `replay`: finetune-sequential whose training set for task i adds the k training examples per class
  kept from every earlier task (a memory of k per earlier class), each scored with its own task's
  template and verbalizer.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch

from promptlab.backends import make_backend
from promptlab.catalog.catalog import Setup
from promptlab.methods import method_options
from promptlab.methods.context import EVAL_BATCH, MethodContext
from promptlab.methods.finetune import train_cloze, trainable_copy
from promptlab.methods.lora import adapter_dropout, add_adapters, lora_config
from promptlab.methods.softprompt import train_soft_prompt
from promptlab.backends.models import LoadedModel
from promptlab.backends.scoring import LabelScorer
from promptlab.catalog.template import Prompt
from promptlab.methods.training import TrainResult, train

# strategy -> the few-shot method whose options (and defaults) it takes
STRATEGY_METHODS = {"prompt-per-task": "softprompt", "progressive": "softprompt", "lora-per-task": "lora",
                    "finetune-sequential": "finetune", "replay": "finetune"}
STRATEGIES = tuple(STRATEGY_METHODS)


def strategy_options(name: str, options: dict):
    """The strategy's method options: defaults overridden by `options`; mistakes are UserErrors."""
    return method_options(STRATEGY_METHODS[name], options)


class Strategy:
    def __init__(self, loaded: LoadedModel, options, seed: int):
        self.loaded, self.options, self.seed = loaded, options, seed
        self.learned = 0  # tasks learned so far

    def learn(self, index: int, context: MethodContext) -> TrainResult:
        raise NotImplementedError

    def scorer(self, index: int, setup: Setup) -> LabelScorer:
        raise NotImplementedError

    def trainable_parameters(self) -> int:
        raise NotImplementedError

    def _scorer_on(self, model: torch.nn.Module, setup: Setup, soft_prompt: torch.Tensor | None = None) -> LabelScorer:
        loaded = self.loaded
        return LabelScorer(make_backend(model, loaded.tokenizer, loaded.kind, loaded.device), setup.template,
                           setup.verbalizer, aggregate=self.options.aggregate,
                           batch_size=max(self.options.batch_size, EVAL_BATCH),
                           soft_prompt=None if soft_prompt is None else soft_prompt.to(loaded.device))

    def _latest(self, index: int) -> int:
        """The task whose module scores task `index`: itself once learned, else the last one learned."""
        return min(index, self.learned - 1)


class PromptPerTask(Strategy):
    """A soft prompt per task; with `progressive`, each new prompt goes in front of the frozen earlier ones."""

    def __init__(self, loaded, options, seed, *, progressive: bool):
        super().__init__(loaded, options, seed)
        self.progressive = progressive
        self.prompts: list[torch.Tensor] = []  # [n, hidden] per task, on the CPU

    def learn(self, index, context):
        after = self._stack(index - 1) if self.progressive and index > 0 else None
        embeddings, result = train_soft_prompt(context, after=after)
        self.prompts.append(embeddings)
        self.learned += 1
        return result

    def _stack(self, index: int) -> torch.Tensor:
        """[P_index; ...; P_0]"""
        return torch.cat(self.prompts[index::-1])

    def scorer(self, index, setup):
        latest = self._latest(index)
        prompt = self._stack(latest) if self.progressive else self.prompts[latest]
        return self._scorer_on(self.loaded.model, setup, prompt)

    def trainable_parameters(self):
        return sum(prompt.numel() for prompt in self.prompts)


class LoraPerTask(Strategy):
    """A LoRA adapter per task in one peft model over a copy of the weights; only the newest trains."""

    def __init__(self, loaded, options, seed):
        super().__init__(loaded, options, seed)
        self.model = copy.deepcopy(loaded.model).eval()
        self.peft_model = None

    def learn(self, index, context):
        name = _adapter(index)
        if self.peft_model is None:
            self.peft_model = add_adapters(self.model, self.options, self.loaded.kind, seed=self.seed,
                                           adapter_name=name)
        else:
            torch.manual_seed(self.seed)
            self.peft_model.add_adapter(name, lora_config(self.options, self.loaded.kind))
        self._activate(name)
        with adapter_dropout(self.peft_model, self.options.dropout):
            _, result = train_cloze(context, self.model, self.peft_model, description=f"lora-per-task {name}")
        self.learned += 1
        return result

    def _activate(self, name: str) -> None:
        self.peft_model.set_adapter(name)
        for parameter_name, parameter in self.peft_model.named_parameters():
            parameter.requires_grad_(f".{name}." in parameter_name)  # earlier adapters stay as they were

    def scorer(self, index, setup):
        self._activate(_adapter(self._latest(index)))
        return self._scorer_on(self.model, setup)

    def trainable_parameters(self):
        return sum(p.numel() for n, p in self.peft_model.named_parameters() if "lora_" in n)


def _adapter(index: int) -> str:
    return f"task{index}"


class Sequential(Strategy):
    """One copy of the model fine-tuned task after task; with `replay`, earlier tasks' k-shot examples join in."""

    def __init__(self, loaded, options, seed, *, replay: bool):
        super().__init__(loaded, options, seed)
        self.replay = replay
        self.model = trainable_copy(loaded)
        self.memory: list[tuple[int, Setup, dict]] = []  # (task, its setup, a training example)

    def learn(self, index, context):
        if not self.memory:
            _, result = train_cloze(context, self.model, self.model, description=f"sequential task {index}")
        else:
            result = self._learn_with_memory(index, context)
        if self.replay:
            self.memory += [(index, context.setup, example) for example in context.split.train]
        self.learned += 1
        return result

    def _learn_with_memory(self, index: int, context: MethodContext) -> TrainResult:
        """Train on the task's examples and the memory, each input scored with its own task's scorer."""
        setups = {task: setup for task, setup, _ in self.memory} | {index: context.setup}
        scorers = {task: self._scorer_on(self.model, setup) for task, setup in setups.items()}
        labels = {task: setup.task.labels for task, setup in setups.items()}

        split = context.split
        memory = [(task, setup.template.render(example)) for task, setup, example in self.memory]
        memory_gold = [labels[task].index(example["label"]) for task, _, example in self.memory]
        return train(self.model, _mixed_logprobs(scorers, max(map(len, labels.values()))),
                     [(index, prompt) for prompt in context.prompts(split.train)] + memory,
                     context.gold(split.train) + memory_gold,
                     [(index, prompt) for prompt in context.prompts(split.dev)], context.gold(split.dev),
                     self.options.train_config(self.seed, self.loaded), description=f"replay task {index}")

    def scorer(self, index, setup):
        return self._scorer_on(self.model, setup)

    def trainable_parameters(self):
        return sum(p.numel() for p in self.model.parameters())


def _mixed_logprobs(scorers: dict[int, LabelScorer], width: int):
    """(task, prompt) inputs -> [B, width] label log-probs of each input's own task, -inf beyond its labels."""
    def label_logprobs(inputs: Sequence[tuple[int, Prompt]]) -> torch.Tensor:
        rows: list[torch.Tensor | None] = [None] * len(inputs)
        for task in dict.fromkeys(task for task, _ in inputs):
            positions = [i for i, (other, _) in enumerate(inputs) if other == task]
            scores = scorers[task].label_logprobs([inputs[i][1] for i in positions])
            for position, row in zip(positions, scores):
                rows[position] = torch.nn.functional.pad(row, (0, width - row.shape[0]), value=float("-inf"))
        return torch.stack(rows)
    return label_logprobs


def make_strategy(name: str, loaded: LoadedModel, options, seed: int) -> Strategy:
    if name in ("prompt-per-task", "progressive"):
        return PromptPerTask(loaded, options, seed, progressive=name == "progressive")
    if name == "lora-per-task":
        return LoraPerTask(loaded, options, seed)
    return Sequential(loaded, options, seed, replay=name == "replay")


def learning_context(setup: Setup, loaded: LoadedModel, split, seed: int, options) -> MethodContext:
    """What the few-shot training functions take, for one task of the sequence (no test examples: scored apart)."""
    return MethodContext(setup, loaded, split, [], seed, options)
