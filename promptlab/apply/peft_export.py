"""A trained soft prompt as a PEFT prompt-tuning adapter, for tools that load adapters with `peft`.

    OUT/adapter_config.json         peft.PromptTuningConfig (CAUSAL_LM, num_virtual_tokens, token_dim, base model)
    OUT/adapter_model.safetensors   prompt_embeddings [n, hidden]: the same tensor promptlab trained
    OUT/promptlab.json              the soft prompt's own metadata: task, template, verbalizer, training

`peft.PeftModel.from_pretrained(base, OUT)` puts the vectors in front of the input embeddings, which is
where promptlab puts them for a causal model whose tokenizer adds no start token (SmolLM2, GPT-2):
fed the rendered text before the answer slot, it gives the label scores promptlab gives. Two cases
are refused rather than exported wrong: masked LMs (PEFT has no masked-LM task type, and promptlab
writes the prompt after [CLS]) and tokenizers that add a start token (promptlab puts the prompt
after it, PEFT before it). The tokenizer is always loaded to check: a local folder, an alias, or a
hub model (from the cache when the hub is unreachable); one that cannot be loaded is refused too.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from safetensors.torch import save_file

from promptlab.methods.artefacts import load_trained
from promptlab.backends.causal import start_tokens
from promptlab.backends.models import hub_reachable, model_source
from promptlab.errors import UserError
from promptlab.runtime.outputs import write_json
from promptlab.methods.softprompt import TENSOR_NAME

PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
METADATA_FILE = "promptlab.json"


def export_soft_prompt(prompt_folder: str | Path, output: str | Path) -> Path:
    """Write the PEFT prompt-tuning folder for a saved soft prompt of a model whose tokenizer adds no start token."""
    from peft import PromptTuningConfig, PromptTuningInit, TaskType

    saved = load_trained(prompt_folder)
    meta = saved.metadata
    if saved.method != "softprompt":
        raise UserError(f"this artefact was trained with method '{saved.method}'; only soft prompts export to PEFT "
                        "prompt tuning", where=saved.folder,
                        fix="a lora artefact already is a PEFT adapter folder: load it with PeftModel.from_pretrained")
    embeddings = saved.tensors[TENSOR_NAME].float()
    if meta.get("model_kind") != "causal":
        raise UserError(f"this soft prompt is for a {meta.get('model_kind')} model; PEFT's prompt tuning has no "
                        "masked-LM task type", where=saved.folder,
                        fix="export prompts trained on a causal model (e.g. smollm2-135m)")
    if start_tokens(model_tokenizer(meta, saved.folder)):
        raise UserError("the model's tokenizer adds a start token: promptlab puts the prompt after it, PEFT before "
                        "it, so the exported prompt would score differently", where=saved.folder,
                        fix="use the promptlab folder directly (--trained)")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UserError(f"'{output}' is a file, not a folder", fix="give a folder path for the PEFT adapter")
    n_tokens, hidden = embeddings.shape
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n_tokens, token_dim=hidden,
                                num_transformer_submodules=1, prompt_tuning_init=PromptTuningInit.RANDOM,
                                base_model_name_or_path=meta.get("model_source"))
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output, prefix=".peft."))
    try:  # each file replaced atomically; promptlab.json last marks a complete folder
        config.save_pretrained(staging)
        save_file({TENSOR_NAME: embeddings.contiguous()}, staging / PEFT_FILES[1], metadata={"format": "pt"})
        for name in PEFT_FILES:
            os.replace(staging / name, output / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_json(output / METADATA_FILE, {**meta, "exported_from": str(saved.folder.resolve())})
    return output


def model_tokenizer(meta: dict, folder: Path):
    """The tokenizer of the model a soft prompt was trained on: its folder when on this machine, else what its
    name (an alias, a folder, a hub id) resolves to."""
    from transformers import AutoTokenizer

    source = meta.get("model_source")
    if not (source and Path(source).is_dir()):
        source = model_source(meta.get("model") or source or "")
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=Path(source).is_dir() or not hub_reachable())
    except (OSError, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load the tokenizer of model '{meta.get('model')}' to check whether it adds a start "
                        f"token (then PEFT would score the prompt differently): {message}", where=folder,
                        fix="export where the model is on disk or the hub is reachable") from None
