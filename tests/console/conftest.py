"""Fixtures of the console tests: a log buffer in the structlog chain, loop errors, a socket dir."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from aria_actors.console.logbuffer import LogBuffer


@pytest.fixture
def log_buffer(logs: list[dict[str, Any]]) -> Iterator[LogBuffer]:
    """A LogBuffer of 100 events in the structlog chain (before the ``logs`` capture)."""
    buffer = LogBuffer(100)
    old = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, buffer, *old["processors"]],
        cache_logger_on_first_use=False,
    )
    try:
        yield buffer
    finally:
        structlog.configure(**old)


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the loop's exception handler during the test (it should stay empty)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
    finally:
        loop.set_exception_handler(previous)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short private directory under /tmp (a Unix socket path must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="aria-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
