"""Running the promptlab command in-process, as the CLI tests do."""
from __future__ import annotations

import json

from click.testing import CliRunner

from promptlab.cli import main


def invoke(*args, exit_code: int = 0, stdin: str | None = None):
    """Run `promptlab ARGS` (each argument str()-ed) and check its exit status; the click Result."""
    result = CliRunner().invoke(main, [str(arg) for arg in args], input=stdin)
    assert result.exit_code == exit_code, result.output + repr(result.exception)
    return result


def last_json(result) -> dict:
    """The JSON line a command with --json ends its stdout with."""
    return json.loads(result.stdout.strip().splitlines()[-1])
