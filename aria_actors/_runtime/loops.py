"""Which event loop a node owns: the standard library's, or uvloop.

The runtime is written against asyncio alone and runs in whatever loop it is
given: an embedding app keeps its own. Where Aria owns the loop (``aria-node``,
:class:`NodeThread`) it builds one with :func:`loop_factory`, from
``runtime.event_loop``: ``asyncio`` (the standard loop), ``uvloop`` (libuv-based,
about twice the message rate on calls; Linux and macOS, installed with the
``uvloop`` extra), or ``auto`` (uvloop when it is installed).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Literal, cast

from .errors import ConfigError

EventLoopKind = Literal["auto", "asyncio", "uvloop"]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(kind: EventLoopKind) -> LoopFactory:
    """A callable that builds a new event loop of ``kind``.

    Raises:
        ConfigError: ``uvloop`` was asked for but is not installed, or ``kind`` is
            not one of ``auto``, ``asyncio``, ``uvloop``.
    """
    if kind == "asyncio":
        return asyncio.new_event_loop
    if kind not in ("auto", "uvloop"):
        raise ConfigError(
            f"runtime.event_loop: invalid value {kind!r} (expected one of: auto, asyncio, uvloop)"
        )
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        if kind == "auto":
            return asyncio.new_event_loop
        raise ConfigError(
            "runtime.event_loop: 'uvloop' is not installed "
            "(install the extra: pip install 'aria-actors[uvloop]', or use 'asyncio')"
        ) from exc
    return cast(LoopFactory, uvloop.new_event_loop)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which implementation ``loop`` is."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
