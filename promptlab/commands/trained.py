"""`promptlab trained show DIR` and `trained export-peft DIR OUT` (a soft prompt as a PEFT prompt-tuning folder)."""
from __future__ import annotations

from pathlib import Path

import click

from promptlab.methods.artefacts import describe_lines, load_trained
from promptlab.apply.peft_export import export_soft_prompt


def run_show_command(*, folder) -> None:
    for line in describe_lines(load_trained(folder)):
        click.echo(line)


def run_export_peft_command(*, folder, output) -> None:
    source = load_trained(folder).metadata.get("model_source")
    written = export_soft_prompt(folder, output, tokenizer=_local_tokenizer(source))
    click.echo(f"wrote {written} (load with peft.PeftModel.from_pretrained(base_model, '{written}'))")


def _local_tokenizer(source: str | None):
    """The model's tokenizer when its folder is on this machine (to check for a start token), else None."""
    if not source or not Path(source).is_dir():
        return None
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(source)
