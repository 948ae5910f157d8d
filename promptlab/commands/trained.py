"""`promptlab trained show DIR` and `trained export-peft DIR OUT` (a soft prompt as a PEFT prompt-tuning folder)."""
from __future__ import annotations

import click

from promptlab.methods.artefacts import describe_lines, load_trained
from promptlab.apply.peft_export import export_soft_prompt


def run_show_command(*, folder) -> None:
    for line in describe_lines(load_trained(folder)):
        click.echo(line)


def run_export_peft_command(*, folder, output) -> None:
    written = export_soft_prompt(folder, output)
    click.echo(f"wrote {written} (load with peft.PeftModel.from_pretrained(base_model, '{written}'))")
