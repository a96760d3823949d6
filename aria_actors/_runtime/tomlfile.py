"""Reading TOML files into typed structs, with errors that name the file and the key.

Shared by the node configuration and the supervision-tree loader, so that every
bad file reads the same way::

    supervisors/storage.toml: children[1].restart: invalid value 'always'
        (expected one of: permanent, temporary, transient)
    config/node.toml: runtime.mailbox_sise: unknown key
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from .errors import ConfigError

T = TypeVar("T")

_AT = re.compile(r"^(?P<text>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_TOML_NAMES = {
    "object": "a table",
    "array": "an array",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "nothing",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}


def _toml_type(name: str) -> str:
    return " or ".join(_TOML_NAMES.get(part, part) for part in name.split(" | "))


def read_toml(file: Path) -> dict[str, Any]:
    """Parse ``file`` as TOML.

    Raises:
        ConfigError: unreadable, not UTF-8, or not valid TOML (with the position).
    """
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text: {exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from exc


def join_key(prefix: str, key: str) -> str:
    """``children[0]`` + ``restart`` → ``children[0].restart``."""
    if not prefix:
        return key
    return f"{prefix}{key}" if key.startswith("[") else f"{prefix}.{key}"


def describe(error: msgspec.ValidationError, hints: Mapping[str, str] | None = None) -> str:
    """msgspec's validation message as ``key: what is wrong``.

    ``hints`` maps a key's last part (``restart``) to the values it accepts, added
    to "invalid value" messages.
    """
    message = str(error)
    match = _AT.match(message)
    text, path = (match["text"], match["path"].removeprefix(".")) if match else (message, "")
    if unknown := _UNKNOWN.match(text):
        return f"{join_key(path, unknown['field'])}: unknown key"
    if missing := _MISSING.match(text):
        return f"{join_key(path, missing['field'])}: missing (it is required)"
    if enum := _ENUM.match(text):
        text = f"invalid value {enum['value']}"
        last = re.sub(r"\[\d+\]$", "", path.rsplit(".", 1)[-1])
        if hints and last in hints:
            text += f" (expected {hints[last]})"
    elif expected := _EXPECTED.match(text):
        text = f"expected {_toml_type(expected['want'])}, got {_toml_type(expected['got'])}"
    return f"{path or '(top level)'}: {text}"


def convert(raw: Any, target: type[T], file: Path, hints: Mapping[str, str] | None = None) -> T:
    """Decode parsed TOML into ``target``.

    Raises:
        ConfigError: ``file: key: what is wrong`` for any mistyped, unknown, missing
            or refused value.
    """
    try:
        return msgspec.convert(raw, target)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{file}: {describe(exc, hints)}") from exc
