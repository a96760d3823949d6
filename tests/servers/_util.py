"""Shared plumbing of the real-server helpers: ports, deadlines, processes, temp dirs."""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

LOOPBACK = "127.0.0.1"


class ComponentMissing(RuntimeError):
    """A real component (a binary, a library, a package) is not installed.

    ``install`` says how to install it. The fixtures turn this into a failure in CI
    (``CI=true``) and into a skip elsewhere.
    """

    def __init__(self, what: str, install: str) -> None:
        super().__init__(f"{what} is not installed; {install}")
        self.what = what
        self.install = install


class ServerFailed(RuntimeError):
    """A server did not start, or did not become ready before its deadline."""


def free_port(consecutive: int = 1) -> int:
    """A loopback TCP port that is free now, with the ``consecutive - 1`` ports after it.

    Another process may take it before the server binds it: the servers retry with a
    new port when their start fails on an address in use.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((LOOPBACK, 0))
            port: int = first.getsockname()[1]
            if port + consecutive - 1 > 65535:
                continue
            others: list[socket.socket] = []
            try:
                for extra in range(1, consecutive):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    others.append(sock)
                    sock.bind((LOOPBACK, port + extra))
            except OSError:
                continue
            finally:
                for sock in others:
                    sock.close()
            return port
    raise ServerFailed(f"no {consecutive} consecutive free loopback ports found")


def wait_for(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    alive: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``predicate`` until it is true; raise ``ServerFailed`` at the deadline.

    ``alive`` returns an error text once the awaited process has died, which ends the
    wait at once instead of at the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if alive is not None and (dead := alive()) is not None:
            raise ServerFailed(f"{what}: {dead}")
        if time.monotonic() >= deadline:
            raise ServerFailed(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGTERM the process (its whole session), SIGKILL it at the deadline, reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_process(proc)
            return
    # Anything left in its session (it is a session leader) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_process(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGKILL the process and its session, then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait(timeout)


def short_tempdir(prefix: str) -> Path:
    """A new private directory under /tmp (short enough for Unix socket paths).

    Unix socket paths are limited to about 100 bytes, and ``$TMPDIR`` may be long or
    unreachable for another user, so /tmp is preferred when it exists.
    """
    parent = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def clean_env(drop_prefixes: tuple[str, ...]) -> dict[str, str]:
    """The current environment without the variables that start with ``drop_prefixes``."""
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


class ChildServer(abc.ABC):
    """A server that is one child process with a temporary directory of its own.

    Subclasses set ``_base`` (the directory) and ``_proc`` (the process, once started)
    and implement ``start``; stopping, killing and removing are shared.
    """

    _base: Path
    _proc: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def start(self) -> None:
        """Start the process; ready to serve when it returns."""

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop it gracefully (SIGTERM, then SIGKILL after a deadline)."""
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def kill(self) -> None:
        if self._proc is not None:
            kill_process(self._proc)
            self._proc = None

    def destroy(self) -> None:
        """Kill it and remove its directory."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
