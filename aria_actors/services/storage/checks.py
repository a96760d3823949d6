"""What a catalogue request names, checked before anything is done: asset names,
the source of an add (a file or a directory), the target of a fetch, metadata."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec

from .catalogue_errors import InvalidName
from .errors import StorageError
from .index_files import VersionKind

NAME_LIMIT: Final = 200
NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@:=-]*")
METADATA_LIMIT: Final = 64 * 1024


def check_asset_name(name: object) -> str:
    """``name`` if the catalogue accepts it as an asset name.

    Raises:
        InvalidName: not a string, empty, longer than :data:`NAME_LIMIT`, holding a path
            separator or any character but letters, digits and ``. _ + @ : = -``, or
            not starting with a letter or digit.
    """
    if not isinstance(name, str):
        raise InvalidName(f"an asset name is a string, not {type(name).__name__}")
    if not name:
        raise InvalidName("an asset name cannot be empty")
    if len(name) > NAME_LIMIT:
        raise InvalidName(f"asset name is {len(name)} characters long; the limit is {NAME_LIMIT}")
    if "/" in name or "\\" in name:
        raise InvalidName(f"asset name {name!r} must not contain a path separator ('/' or '\\')")
    if not NAME.fullmatch(name):
        raise InvalidName(
            f"asset name {name!r}: use letters, digits and . _ + @ : = - "
            "(starting with a letter or digit)"
        )
    return name


def check_source(path: str) -> tuple[Path, VersionKind]:
    """The source of an add and what it makes: a file a ``blob`` version, a directory
    an ``archive`` version.

    Raises:
        ValueError: a relative path.
        StorageError: nothing there, or a directory that cannot be listed.
    """
    source = Path(path)
    if not source.is_absolute():
        raise ValueError(f"the source path must be absolute (a path on the node): {path!r}")
    try:
        is_dir = source.is_dir()
        exists = is_dir or source.exists()
    except OSError as exc:
        raise StorageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if not exists:
        raise StorageError(f"{path}: no such file or directory on the node")
    if is_dir:
        if not os.access(source, os.R_OK | os.X_OK):
            raise StorageError(
                f"{path}: the directory cannot be read (permission denied); "
                "a directory version needs to list and read everything in it"
            )
        return source, "archive"
    return source, "blob"


def check_target_path(path: str) -> Path:
    """The target of a fetch, as a path (refused when relative)."""
    target = Path(path)
    if not target.is_absolute():
        raise ValueError(f"the target path must be absolute (a path on the node): {path!r}")
    return target


def check_target(target: Path, kind: VersionKind) -> Path:
    """``target`` if a version of ``kind`` can be fetched there: a file version to a
    file (not a directory), a directory version to a directory or to nothing yet (not
    a file, nor a symlink); its parent directory must exist.

    Raises:
        StorageError: saying which.
    """
    if kind == "blob" and target.is_dir():
        raise StorageError(f"{target} is a directory; name the file to write")
    if not target.parent.is_dir():
        raise StorageError(f"{target.parent}: no such directory on the node")
    if kind == "archive" and os.path.lexists(target):
        if target.is_symlink():
            raise StorageError(
                f"{target} is a symlink; a directory version is fetched to a directory "
                "(replaced as a whole) or to a path that does not exist yet"
            )
        if not target.is_dir():
            raise StorageError(
                f"{target} is a file, not a directory; a directory version is fetched to a "
                "directory (replaced as a whole) or to a path that does not exist yet"
            )
    return target


def metadata_text(metadata: Mapping[str, Any] | None) -> str:
    """``metadata`` as the JSON text stored with a version.

    Raises:
        ValueError: not JSON, or more than :data:`METADATA_LIMIT` bytes of it.
    """
    if not metadata:
        return "{}"
    try:
        text = msgspec.json.encode(dict(metadata)).decode()
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(f"metadata must be JSON (str keys, JSON values): {exc}") from None
    if len(text) > METADATA_LIMIT:
        raise ValueError(f"metadata is {len(text)} bytes of JSON; the limit is {METADATA_LIMIT}")
    return text
