"""Reading the CLI's input files: records (JSON object, array or JSON Lines) and list members.

Input: a path (or `-` for standard input). Output: decoded records, or an
`InputFileError` that names the file, line and column of the problem.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from compiler.evaluate import json_input
from compiler.evaluate.json_input import JsonInputError, strip_bom
from compiler.evaluate.validate_input import convert_value
from dsl import ast
from dsl.errors import DecideError


class InputFileError(DecideError):
    """An input or list file that cannot be read or decoded."""


def _read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    file_path = Path(path)
    try:
        if file_path.is_dir():
            raise InputFileError(f"{path}: is a directory, not a file")
        return file_path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from None


def _decode_error(name: str, exc: JsonInputError, line_offset: int = 0) -> InputFileError:
    if exc.line:
        return InputFileError(f"{name}:{exc.line + line_offset}:{exc.column}: {exc.message}")
    where = f"{name}:{line_offset + 1}" if line_offset else name
    return InputFileError(f"{where}: {exc.message}")


def read_records(path: str) -> tuple[bool, Iterator[Any]]:
    """(True, one record) for a JSON object; (False, records) for a JSON array or JSON Lines.

    In JSON Lines a line that is not valid JSON yields an InputFileError in
    place of its record, so the caller reports it and goes on. Decoding is
    `compiler.evaluate.json_input.loads`: a repeated key is an error, integers stay exact.
    """
    name = "<stdin>" if path == "-" else path
    data = strip_bom(_read_bytes(path))
    if b"\x00" in data:
        raise InputFileError(f"{name}: this is a binary file, not JSON")
    if not data.strip():
        raise InputFileError(f"{name}: the input is empty; expected a JSON object, array or JSON Lines")
    try:
        document = json_input.loads(data)
    except JsonInputError as exc:
        lines = data.splitlines()
        first = next((line for line in lines if line.strip()), b"")
        if exc.code == "invalid_json" and len([line for line in lines if line.strip()]) > 1 and _parses(first):
            return False, _json_lines(name, lines)
        raise _decode_error(name, exc) from None
    if isinstance(document, dict):
        return True, iter([document])
    if isinstance(document, list):
        return False, iter(document)
    raise InputFileError(f"{name}: expected a JSON object, an array of objects or JSON Lines")


def _parses(line: bytes) -> bool:
    try:
        json_input.loads(line)
    except JsonInputError:
        return False
    return True


def _json_lines(name: str, lines: list[bytes]) -> Iterator[Any]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json_input.loads(line)
        except JsonInputError as exc:
            yield _decode_error(name, exc, line_offset=number - 1)


def read_list_file(path: str, element_type: str) -> list[Any]:
    """Members of a named list, one per line (surrounding white space and blank lines ignored)."""
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not valid UTF-8 text") from None
    members: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        member = line.strip()
        if not member:
            continue
        if element_type == "string":
            members.append(member)
            continue
        try:
            raw = orjson.loads(member)
            members.append(convert_value(ast.TypeRef(element_type), raw))
        except (orjson.JSONDecodeError, ValueError):
            raise InputFileError(
                f"{path}:{number}: {member!r} is not {'a whole number' if element_type == 'int' else 'a number'}"
            ) from None
    return members
