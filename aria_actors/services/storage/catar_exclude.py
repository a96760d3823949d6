"""``.caexclude`` files: which directory entries casync leaves out of an archive.

A ``.caexclude`` in a directory lists patterns, one per line (blank lines and lines
starting with ``#`` are skipped, surrounding whitespace is stripped):

* ``name`` — a glob (``fnmatch(3)`` with ``FNM_PERIOD``: a leading dot must be matched
  literally) matched against entry names in this directory *and every directory
  below*;
* a pattern containing ``/`` is anchored: ``a/b*`` matches ``b*`` inside the entry
  ``a`` of this directory only; a leading ``/`` just anchors (``/tmp``);
* a trailing ``/`` matches directories only;
* ``!pattern`` re-includes what another pattern excluded (any matching ``!`` line wins).

Rules accumulate down the tree: a subdirectory sees its parent's unanchored rules, the
remainder of anchored multi-component rules, and its own ``.caexclude``. The
``.caexclude`` file itself is archived unless a rule excludes it. Matching uses the C
library's ``fnmatch`` so glob semantics (character classes, escapes) are casync's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, cast

EXCLUDE_FILE_NAME: Final = b".caexclude"
_FNM_PERIOD: Final = 1 << 2
_FNM_NOMATCH: Final = 1
_LINE_MAX: Final = 64 * 1024


def _load_fnmatch() -> Callable[[bytes, bytes, int], int]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    func = libc.fnmatch
    func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
    func.restype = ctypes.c_int
    return cast(Callable[[bytes, bytes, int], int], func)


_fnmatch: Final = _load_fnmatch()


@dataclass
class Rule:
    """One pattern component: leaf rules exclude (or re-include), inner ones lead deeper."""

    name: bytes
    kind: str  # "exclude", "include" or "inner"
    anchored: bool
    directory_only: bool
    children: list[Rule] = field(default_factory=list)


class ExcludeSyntaxError(ValueError):
    """A ``.caexclude`` line casync refuses (an empty, ``.`` or ``..`` path component)."""


def parse_line(line: bytes) -> Rule:
    """The rule chain of one (stripped, non-comment) ``.caexclude`` line.

    Raises :class:`ExcludeSyntaxError` for empty, ``.`` or ``..`` components.
    """
    kind = "exclude"
    rest = line
    if rest.startswith(b"!"):
        kind = "include"
        rest = rest[1:]
    anchored = b"/" in rest
    rest = rest.lstrip(b"/")
    first: Rule | None = None
    current: Rule | None = None
    while True:
        cut = rest.find(b"/")
        component = rest if cut < 0 else rest[:cut]
        if component in (b"", b".", b".."):
            raise ExcludeSyntaxError(f"bad path component {component!r} in exclude rule {line!r}")
        rest = b"" if cut < 0 else rest[cut:]
        directory_only = rest.startswith(b"/")
        rest = rest.lstrip(b"/")
        rule = Rule(component, kind if not rest else "inner", anchored, directory_only)
        if current is None:
            first = rule
        else:
            current.children.append(rule)
        if not rest:
            break
        current = rule
        anchored = True
    assert first is not None
    return first


def parse(text: bytes) -> list[Rule]:
    """The rules of a ``.caexclude`` file's contents (see :func:`parse_line`)."""
    rules = []
    for raw in text.split(b"\n"):
        if len(raw) >= _LINE_MAX:
            raise ExcludeSyntaxError(f"exclude rule longer than {_LINE_MAX} bytes")
        line = raw.strip(b" \t\n\r")
        if not line or line.startswith(b"#"):
            continue
        rules.append(parse_line(line))
    return rules


def load(dir_fd: int) -> list[Rule]:
    """The rules of the ``.caexclude`` in the directory ``dir_fd``; ``OSError`` if unreadable."""
    fd = os.open(
        EXCLUDE_FILE_NAME, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd
    )
    with os.fdopen(fd, "rb") as f:
        return parse(f.read())


def fnmatch(pattern: bytes, name: bytes) -> bool:
    """The C library's ``fnmatch(pattern, name, FNM_PERIOD)``; ``ValueError`` on a bad pattern."""
    result = _fnmatch(pattern, name, _FNM_PERIOD)
    if result == 0:
        return True
    if result == _FNM_NOMATCH:
        return False
    raise ValueError(f"fnmatch failed on pattern {pattern!r}")


def test(rules: list[Rule], name: bytes, is_directory: bool) -> tuple[bool, list[Rule]]:
    """Whether ``name`` is excluded by ``rules``, and the rules that apply inside it.

    The second value (meaningful for directories) holds the unanchored rules, which
    apply at every depth, and the next components of matching inner rules.
    """
    excluded = included = False
    below: list[Rule] = []
    for rule in rules:
        if not rule.anchored and is_directory:
            below.append(rule)
        if rule.directory_only and not is_directory:
            continue
        if not fnmatch(rule.name, name):
            continue
        if rule.kind == "include":
            included = True
        elif rule.kind == "exclude":
            excluded = True
        else:
            below.extend(rule.children)
    return excluded and not included, below
