"""Strict YAML loading for catalog files.

Duplicate keys, unknown keys and YAML 1.1 booleans written as words (`no`, `yes`, `on`,
`off`) are errors with a file and line, because each of them silently changes meaning
in a plain `yaml.safe_load`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import yaml

from promptlab.errors import UserError

# YAML 1.1 reads these plain words as booleans; `true`/`false` are accepted as booleans.
_WORD_BOOLEANS = re.compile(r"^(y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$")


class Mapping(dict):
    """A YAML mapping that remembers the line of each key (1-based) and its own line."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class Sequence(list):
    """A YAML sequence that remembers the line of each item (1-based)."""

    line: int = 0
    item_lines: list


class _StrictLoader(yaml.SafeLoader):
    path: str = "<yaml>"


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> Mapping:
    result = Mapping()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            raise UserError(f"duplicate key '{key}' (first on line {result.key_lines[key]})",
                            where=loader.path, line=line, fix="keep one of the two entries")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _StrictLoader, node: yaml.SequenceNode) -> Sequence:
    result = Sequence(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _construct_bool(loader: _StrictLoader, node: yaml.ScalarNode) -> bool:
    if _WORD_BOOLEANS.match(node.value):
        raise UserError(f"'{node.value}' reads as a YAML boolean, not as the word '{node.value}'",
                        where=loader.path, line=node.start_mark.line + 1,
                        fix=f"quote it: \"{node.value}\"")
    return loader.construct_yaml_bool(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_StrictLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def load_yaml(path: Path) -> Mapping:
    """Load a YAML file whose top level must be a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"not valid UTF-8 ({error.reason} at byte {error.start})", where=path,
                        fix="save the file as UTF-8") from None
    except OSError as error:
        raise UserError(f"cannot read file: {error.strerror}", where=path) from None
    loader = _StrictLoader(text)
    loader.path = str(path)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise UserError(f"invalid YAML: {error.problem or error.context}", where=path,
                        line=mark.line + 1 if mark else None,
                        fix="check indentation, colons and quoting on that line") from None
    finally:
        loader.dispose()
    if not isinstance(data, Mapping):
        raise UserError("expected a mapping of keys to values at the top level", where=path,
                        fix="see the README for the file format")
    return data


def check_keys(mapping: Mapping, allowed: Iterable[str], *, where: Path, required: Iterable[str] = ()) -> None:
    """Reject unknown keys (with a did-you-mean) and report missing required ones."""
    from promptlab.errors import did_you_mean

    allowed = list(allowed)
    for key in mapping:
        if key not in allowed:
            raise UserError(f"unknown key '{key}'", where=where, line=mapping.line_of(key),
                            fix=did_you_mean(str(key), allowed))
    for key in required:
        if key not in mapping:
            raise UserError(f"missing key '{key}'", where=where, line=mapping.line or None,
                            fix=f"add '{key}:' (allowed keys: {', '.join(allowed)})")
