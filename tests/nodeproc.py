"""A real ``aria-node`` in a child process for tests, ``aria-console`` runs against it,
and the actors those nodes boot.

:class:`NodeProcess` starts ``bin/aria-node`` with this interpreter in private temporary
directories (``--state-dir``, ``--runtime-dir``, ``--supervisors``), reads its JSON log
lines on a thread, and lets a test wait for an event with a deadline; it kills the
node when the test leaves the ``with`` block. :func:`run_console` runs ``bin/aria-console``
the same way, with a timeout. The actors at the end are named in service files as
``tests.nodeproc:Journal`` and so on: the node imports this module from the repository
root.

Every wait here has a deadline: nothing in a test that uses this module can hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import msgspec

from aria_actors import Actor, ExitReason, handles
from tests.runtime.actors import Inc

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "bin" / "aria-node"
CONSOLE = ROOT / "bin" / "aria-console"
TIMEOUT = 20.0
"""The deadline of any single wait (a start, a reply, an exit): generous on purpose."""

SCRUBBED = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "STATE_DIRECTORY",
    "RUNTIME_DIRECTORY",
)


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without anything that would steer a node by accident
    (systemd variables, ``ARIA_<SECTION>__<KEY>`` overrides), plus ``extra``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in SCRUBBED and not (key.startswith("ARIA_") and "__" in key)
    }
    environment.pop("PYTHONUNBUFFERED", None)  # the node itself must flush its log lines
    environment.update(extra or {})
    return environment


@contextmanager
def short_directory() -> Iterator[Path]:
    """A new private directory under ``/tmp`` with a short path (Unix socket paths are
    limited to about 104 bytes; pytest's ``tmp_path`` can be longer), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="aria-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class NodeDirs:
    """The directories of one node: state and runtime (created by the node), services."""

    def __init__(self, base: Path, short: Path) -> None:
        self.state = base / "state"
        self.runtime = short / "run"
        self.supervisors = base / "supervisors"
        self.supervisors.mkdir(parents=True, exist_ok=True)

    @property
    def socket(self) -> Path:
        return self.runtime / "control.sock"

    @property
    def cookie(self) -> Path:
        return self.state / "cookie"

    @property
    def node_file(self) -> Path:
        return self.state / "node.json"

    def service(self, file_name: str, text: str) -> Path:
        """Write one service file (dedented) into the supervisors directory."""
        file = self.supervisors / file_name
        file.write_text(textwrap.dedent(text), encoding="utf-8")
        return file


class ConsoleResult:
    """What one ``aria-console`` run printed, and its exit status."""

    def __init__(self, status: int, stdout: str, stderr: str) -> None:
        self.status = status
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return (
            f"<console exit {self.status}\n--- stdout ---\n{self.stdout}"
            f"--- stderr ---\n{self.stderr}>"
        )

    def json(self) -> list[dict[str, Any]]:
        """The replies of a ``--json`` run, one JSON document per line."""
        replies = [json.loads(line) for line in self.stdout.splitlines() if line.strip()]
        assert all(isinstance(reply, dict) for reply in replies), self
        return replies


def run_console(*args: str, timeout: float = TIMEOUT) -> ConsoleResult:
    """Run ``aria-console ARGS`` with this interpreter; killed if it outlives ``timeout``."""
    try:
        done = subprocess.run(
            [sys.executable, str(CONSOLE), "--no-colour", *args],
            cwd=ROOT,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"aria-console {args} did not finish in {timeout}s: {exc}") from None
    return ConsoleResult(done.returncode, done.stdout, done.stderr)


class NodeProcess:
    """A running ``aria-node --log-format json``; use it as a context manager.

    ``events`` holds every log line read so far (parsed JSON); lines that are not JSON
    (nothing the node should print) are kept as ``{"event": None, "raw": line}``.
    """

    def __init__(
        self,
        dirs: NodeDirs,
        *args: str,
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.dirs = dirs
        command = [
            sys.executable,
            str(NODE),
            "--log-format",
            "json",
            "--state-dir",
            str(dirs.state),
            "--runtime-dir",
            str(dirs.runtime),
            "--supervisors",
            str(dirs.supervisors),
        ]
        if config is not None:
            command += ["--config", str(config)]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*command, *args],
            cwd=ROOT,
            env=child_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.eof = False
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr,), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    # -- the process ------------------------------------------------------------------------

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def kill(self) -> None:
        """SIGKILL the node if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(TIMEOUT)
        finally:
            for reader in self.readers:
                reader.join(TIMEOUT)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the exit and read the rest of the output; the exit status."""
        deadline = time.monotonic() + timeout
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"aria-node did not exit in {timeout}s\n{self.output()}") from None
        while self._next_line(deadline) is not None:
            pass
        for reader in self.readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        return status

    def output(self) -> str:
        """Everything the node printed so far, for assertion messages."""
        self._drain()
        return f"--- stdout ---\n{''.join(self.stdout)}\n--- stderr ---\n{''.join(self.stderr)}"

    # -- its log ----------------------------------------------------------------------------

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def _collect(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr.append(line)

    def _take(self, line: str | None) -> str | None:
        if line is None:
            self.eof = True
            return None
        self.stdout.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        self.events.append(event if isinstance(event, dict) else {"event": None, "raw": line})
        return line

    def _drain(self) -> None:
        """Take the lines already read, without waiting."""
        while not self.eof:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            self._take(line)

    def _next_line(self, deadline: float) -> str | None:
        """The next stdout line; None at end of output; AssertionError past the deadline."""
        if self.eof:
            return None
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no output from aria-node in time\n{self.output()}") from None
        return self._take(line)

    def find(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        """The events with this name (and these field values) read so far."""
        self._drain()
        return [
            entry
            for entry in self.events
            if entry.get("event") == event
            and all(entry.get(key) == value for key, value in fields.items())
        ]

    def wait_for(self, event: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first event with this name (and these field values), read already or
        within ``timeout`` seconds."""
        found = self.find(event, **fields)
        if found:
            return found[0]
        deadline = time.monotonic() + timeout
        while True:
            if self._next_line(deadline) is None:
                raise AssertionError(f"aria-node ended without {event!r} {fields}\n{self.output()}")
            entry = self.events[-1]
            if entry.get("event") == event and all(
                entry.get(key) == value for key, value in fields.items()
            ):
                return entry

    def wait_count(self, event: str, count: int, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """The events with this name once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.find(event)) < count:
            if self._next_line(deadline) is None:
                raise AssertionError(
                    f"aria-node ended with {len(found)} {event!r}\n{self.output()}"
                )
        return found

    def wait_ready(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The ``node_ready`` event; fails at once if the node stopped without it."""
        return self.wait_for("node_ready", timeout)

    def names(self) -> list[str]:
        self._drain()
        return [str(entry.get("event")) for entry in self.events]

    # -- consoles ---------------------------------------------------------------------------

    def console(
        self, *commands: str, json_output: bool = False, timeout: float = TIMEOUT
    ) -> ConsoleResult:
        """``aria-console --state-dir STATE [-json] -c COMMAND ...`` against this node."""
        args = ["--state-dir", str(self.dirs.state)]
        if json_output:
            args.append("--json")
        for command in commands:
            args += ["-c", command]
        return run_console(*args, timeout=timeout)

    def replies(self, *commands: str) -> list[dict[str, Any]]:
        """The JSON replies to ``commands``; the console must exit 0."""
        result = self.console(*commands, json_output=True)
        assert result.status == 0, result
        replies = result.json()
        assert len(replies) == len(commands), result
        return replies


def poll(check: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy (returned); AssertionError after
    ``timeout`` seconds with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: last value {value!r}")
        time.sleep(interval)


class NotifyListener:
    """A systemd-like ``NOTIFY_SOCKET``: an ``AF_UNIX`` datagram socket that collects
    the notifications (each one a list of ``KEY=VALUE`` lines)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.received: list[list[str]] = []

    def close(self) -> None:
        self.sock.close()

    def next(self, deadline: float) -> list[str]:
        """The next notification; AssertionError past ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no notification in time; received {self.received}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no notification in time; received {self.received}") from None
        lines = data.decode().split("\n")
        self.received.append(lines)
        return lines

    def wait_for(self, line: str, timeout: float = TIMEOUT) -> list[str]:
        """The next notification holding ``line`` (those before it are kept in ``received``)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.next(deadline)
            if line in lines:
                return lines


async def attach(state_dir: Path) -> Any:
    """An in-process :class:`ConsoleClient` attached to the node of ``state_dir``."""
    from aria_actors.console.client import ConsoleClient, locate

    return await ConsoleClient.attach(locate(state_dir=state_dir), timeout=TIMEOUT)


def welcome_node(state_dir: Path) -> str:
    """The node name in the ``Welcome`` a console gets from the node of ``state_dir``."""

    async def run() -> str:
        client = await attach(state_dir)
        try:
            return str(client.welcome.node)
        finally:
            await client.close()

    return asyncio.run(run())


# ======================================================================================
# Actors the test nodes boot (``tests.nodeproc:Name`` in service files)
# ======================================================================================


class Forward(msgspec.Struct, frozen=True, tag=True):
    """Ask a :class:`Relay` to cast ``Inc(n)`` to its target."""

    n: int = 1


class Say(msgspec.Struct, frozen=True, tag=True):
    """Ask a :class:`Chatty` to log ``text`` at ``level`` through ``self.log``."""

    level: str
    text: str


class Whoami(msgspec.Struct, frozen=True, tag=True):
    """Ask a :class:`Vault` for its user."""


def append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")


class Journal(Actor):
    """Appends ``init LABEL`` to ``path`` at the end of its ``init`` (after ``delay``
    seconds) and ``terminate LABEL`` in ``terminate``: the order services start and stop."""

    async def init(self, path: str, label: str, delay: float = 0.0) -> None:
        self.path = path
        self.label = label
        if delay:
            await asyncio.sleep(delay)
        append_line(path, f"init {label}")

    async def terminate(self, reason: ExitReason) -> None:
        append_line(self.path, f"terminate {self.label}")


class Vault(Actor):
    """Holds a password the console must never show."""

    secret_fields = frozenset({"password"})

    async def init(self, user: str = "ann", password: str = "hunter2") -> None:
        self.user = user
        self.password = password

    @handles(Whoami)
    def whoami(self, message: Whoami) -> str:
        return self.user


class Relay(Actor):
    """Casts ``Inc(n)`` to the actor registered as ``target`` for every ``Forward(n)``."""

    async def init(self, target: str) -> None:
        self.target = target

    @handles(Forward)
    def forward(self, message: Forward) -> None:
        ref = self.node.whereis(self.target)
        if ref is not None:
            ref.cast_nowait(Inc(n=message.n))


class SlowStop(Actor):
    """Its ``terminate`` logs ``slow_terminate_started`` and then takes ``seconds``."""

    async def init(self, seconds: float = 10.0) -> None:
        self.seconds = seconds

    async def terminate(self, reason: ExitReason) -> None:
        self.log.info("slow_terminate_started", seconds=self.seconds)
        await asyncio.sleep(self.seconds)


class Chatty(Actor):
    """Logs through its own ``self.log`` on request."""

    @handles(Say)
    def say(self, message: Say) -> str:
        getattr(self.log, message.level)("chatty_said", text=message.text)
        return message.text


def layered_services(dirs: NodeDirs, journal: Path, top_delay: float = 0.0) -> None:
    """Three services, each requiring the one before: ``svc_base`` ← ``svc_mid`` ←
    ``svc_top``, each with one :class:`Journal` writing to ``journal``."""
    for file_name, name, requires, delay in (
        ("base.toml", "svc_base", [], 0.0),
        ("mid.toml", "svc_mid", ["svc_base"], 0.0),
        ("top.toml", "svc_top", ["svc_mid"], top_delay),
    ):
        dirs.service(
            file_name,
            f"""
            [service]
            name = "{name}"
            requires = {json.dumps(requires)}

            [[children]]
            id = "journal"
            actor = "tests.nodeproc:Journal"
            [children.args]
            path = "{journal}"
            label = "{name}"
            delay = {delay}
            """,
        )


def counter_service(dirs: NodeDirs, *names: str, service: str = "svc_app") -> None:
    """One service of ``tests.runtime.actors:Counter`` workers registered under ``names``."""
    children = "".join(
        f"""
        [[children]]
        id = "{name}"
        actor = "tests.runtime.actors:Counter"
        name = "{name}"
        """
        for name in names
    )
    dirs.service(f"{service}.toml", f'[service]\nname = "{service}"\n' + textwrap.dedent(children))
