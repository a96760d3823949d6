"""``aria-node`` as a service manager runs it: JSON logs on stdout, signals, exit status.

Each test starts ``bin/aria-node`` with this interpreter in a child process, reads
its stdout line by line with a deadline, and kills it if anything hangs.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "bin" / "aria-node"
ACTORS = "tests.runtime.loader_actors"
TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


class Daemon:
    """A running ``aria-node --log-format json``; use it as a context manager."""

    def __init__(
        self,
        *args: str,
        command: Sequence[str] = (sys.executable, str(LAUNCHER)),
        cwd: Path = ROOT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        # Hermetic: the node's default state and runtime directories (from XDG) are a
        # fresh short temporary directory, never the user's own.
        self.home = Path(tempfile.mkdtemp(prefix="aria-d-", dir="/tmp"))
        isolated = {
            "XDG_STATE_HOME": str(self.home / "state"),
            "XDG_RUNTIME_DIR": str(self.home / "run"),
        }
        environment = {**os.environ, **isolated, **(env or {})}
        for name in [n for n in environment if n.startswith(("NOTIFY_", "WATCHDOG_"))]:
            del environment[name]
        environment.pop("PYTHONUNBUFFERED", None)  # the daemon itself must flush its log lines
        self.proc = subprocess.Popen(
            [*command, "--log-format", "json", *args],
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._collect, args=(self.proc.stderr,), daemon=True),
        ]
        for reader in self.readers:
            reader.start()
        self.events: list[dict[str, Any]] = []
        self.eof = False

    def _read(self, stream: IO[str], into: queue.Queue[str | None]) -> None:
        for line in stream:
            into.put(line)
        into.put(None)

    def _collect(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr.append(line)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def output(self) -> str:
        return f"--- stdout ---\n{''.join(self.stdout)}\n--- stderr ---\n{''.join(self.stderr)}"

    def _next_line(self, deadline: float) -> str | None:
        """The next stdout line; None at end of output; AssertionError past the deadline."""
        if self.eof:
            return None
        remaining = deadline - time.monotonic()
        try:
            line = self.lines.get(timeout=max(0.0, remaining))
        except queue.Empty:
            raise AssertionError(f"no output from aria-node in time\n{self.output()}") from None
        if line is None:
            self.eof = True
            return None
        self.stdout.append(line)
        event = json.loads(line)  # every stdout line is a JSON object
        assert isinstance(event, dict), line
        self.events.append(event)
        return line

    def wait_for(self, event: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first log line with ``event`` (and these ``fields``), read already or within
        ``timeout`` seconds."""

        def matches(entry: dict[str, Any]) -> bool:
            return entry["event"] == event and all(
                entry.get(key) == value for key, value in fields.items()
            )

        deadline = time.monotonic() + timeout
        for seen in self.events:
            if matches(seen):
                return seen
        while True:
            if self._next_line(deadline) is None:
                raise AssertionError(f"aria-node ended without {event!r}\n{self.output()}")
            if matches(self.events[-1]):
                return self.events[-1]

    def send(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the exit; read the rest of the output; the exit status."""
        deadline = time.monotonic() + timeout
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"aria-node did not exit in time\n{self.output()}") from None
        while self._next_line(deadline) is not None:
            pass
        for reader in self.readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        return status

    def names(self) -> list[str]:
        return [event["event"] for event in self.events]


def write_service(directory: Path, file_name: str, text: str) -> Path:
    file = directory / file_name
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    return file


def security_service(directory: Path) -> Path:
    return write_service(
        directory,
        "security.toml",
        f"""
        [service]
        name = "aria_security"

        [[children]]
        id = "idle"
        actor = "{ACTORS}:Idle"
        """,
    )


def app_service(directory: Path) -> Path:
    return write_service(
        directory,
        "test.toml",
        f"""
        [service]
        name = "aria_test"
        requires = ["aria_security"]

        [supervisor]
        strategy = "rest_for_one"

        [[children]]
        id = "worker"
        actor = "{ACTORS}:Worker"
        name = "aria_test.worker"
        [children.args]
        greeting = "hi"

        [[children]]
        id = "pool"
        [children.dynamic_supervisor]
        max_children = 4
        """,
    )


# ======================================================================================
# Starting and stopping
# ======================================================================================


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_node_without_services_says_so_and_stops_on_a_signal(
    tmp_path: Path, signum: signal.Signals
) -> None:
    with Daemon("--supervisors", str(tmp_path), "--name", "lonely") as daemon:
        ready = daemon.wait_for("node_ready")
        assert ready["services"] == []
        assert ready["node"] == "lonely"
        assert "no services" in ready["note"]
        assert str(tmp_path) in ready["note"]
        assert ready["level"] == "info"
        assert "timestamp" in ready
        daemon.send(signum)
        assert daemon.wait() == 0, daemon.output()
        stopped = daemon.wait_for("node_stopped")
        assert stopped["exit_status"] == 0
        assert stopped["node"] == "lonely"
        names = daemon.names()
        assert names.index("node_started") < names.index("node_ready")
        assert names.index("node_ready") < names.index("node_stopping")
        assert names.index("node_stopping") < names.index("node_stopped")
        assert "Traceback" not in "".join(daemon.stderr)


def test_the_shipped_defaults_start_a_node(tmp_path: Path) -> None:
    with Daemon() as daemon:
        ready = daemon.wait_for("node_ready")
        assert ready["node"] == "aria"
        assert isinstance(ready["services"], list)
        assert ready["event_loop"] == "uvloop"  # runtime.event_loop = "auto", uvloop installed
        daemon.send(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.output()
        assert daemon.wait_for("node_stopped")["exit_status"] == 0


def test_a_service_is_booted_listed_and_stopped(tmp_path: Path) -> None:
    security_service(tmp_path)
    app_service(tmp_path)
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        ready = daemon.wait_for("node_ready")
        assert ready["services"] == ["aria_security", "aria_test"]
        assert "note" not in ready
        daemon.send(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.output()
        stopped = [e["service"] for e in daemon.events if e["event"] == "service_stopped"]
        assert stopped == ["aria_test", "aria_security"]
        started = [e["service"] for e in daemon.events if e["event"] == "service_started"]
        assert started == ["aria_security", "aria_test"]
        assert daemon.names()[-1] == "node_stopped"


def test_one_valid_service_file(tmp_path: Path) -> None:
    write_service(
        tmp_path,
        "only.toml",
        f"""
        [service]
        name = "aria_only"

        [[children]]
        id = "worker"
        actor = "{ACTORS}:Worker"
        """,
    )
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        assert daemon.wait_for("node_ready")["services"] == ["aria_only"]
        daemon.send(signal.SIGINT)
        assert daemon.wait() == 0, daemon.output()


def test_service_selects_a_service_and_its_requirements(tmp_path: Path) -> None:
    security_service(tmp_path)
    app_service(tmp_path)
    write_service(tmp_path, "other.toml", '[service]\nname = "aria_other"\n')
    with Daemon("--supervisors", str(tmp_path), "--service", "aria_test") as daemon:
        assert daemon.wait_for("node_ready")["services"] == ["aria_security", "aria_test"]
        daemon.send(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.output()


def test_a_config_file_is_used(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[runtime]\nmailbox_size = 8\nloop_lag_interval = 0\n", encoding="utf-8")
    services = tmp_path / "services"
    services.mkdir()
    with Daemon("--supervisors", str(services), "--config", str(config)) as daemon:
        daemon.wait_for("node_ready")
        daemon.send(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.output()


def test_a_permanent_service_dying_exits_with_status_1(tmp_path: Path) -> None:
    write_service(
        tmp_path,
        "doomed.toml",
        f"""
        [service]
        name = "aria_doomed"

        [supervisor]
        max_restarts = 0

        [[children]]
        id = "crasher"
        actor = "{ACTORS}:Crasher"
        """,
    )
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        assert daemon.wait() == 1, daemon.output()
        exited = daemon.wait_for("service_exited")
        assert exited["service"] == "aria_doomed"
        assert exited["stops_node"] is True
        assert daemon.wait_for("node_stopped")["exit_status"] == 1


def test_a_signal_during_the_boot_stops_the_node_with_status_0(tmp_path: Path) -> None:
    """SIGTERM while a service is still starting is an orderly stop, not a failure."""
    security_service(tmp_path)
    write_service(
        tmp_path,
        "slow.toml",
        f"""
        [service]
        name = "aria_slow"
        requires = ["aria_security"]

        [[children]]
        id = "slow"
        actor = "{ACTORS}:SlowStart"
        [children.args]
        seconds = 1.0
        """,
    )
    write_service(tmp_path, "zz_last.toml", '[service]\nname = "last"\nrequires = ["aria_slow"]\n')
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        daemon.wait_for("service_starting", service="aria_slow")
        daemon.send(signal.SIGTERM)
        status = daemon.wait()
        assert "Traceback" not in "".join(daemon.stderr), daemon.output()
        assert status == 0, daemon.output()


# ======================================================================================
# Failing to start: a non-zero status and one error line naming the cause
# ======================================================================================


def assert_failed(daemon: Daemon, *fragments: str) -> dict[str, Any]:
    status = daemon.wait()
    assert status != 0, daemon.output()
    failed = daemon.wait_for("node_failed")
    assert failed["level"] == "error"
    for fragment in fragments:
        assert fragment in failed["error"], failed
    assert "Traceback" not in "".join(daemon.stderr), daemon.output()
    assert "node_ready" not in daemon.names()
    return failed


def test_a_broken_toml_file_is_named_and_fails_the_start(tmp_path: Path) -> None:
    security_service(tmp_path)
    broken = write_service(tmp_path, "broken.toml", '[service\nname = "x"\n')
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        assert_failed(daemon, str(broken), "invalid TOML")


def test_a_bad_key_is_named_and_fails_the_start(tmp_path: Path) -> None:
    bad = write_service(
        tmp_path,
        "bad.toml",
        f"""
        [service]
        name = "aria_bad"

        [[children]]
        id = "w"
        actor = "{ACTORS}:Worker"
        restart = "always"
        """,
    )
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        assert_failed(daemon, str(bad), "children[0].restart")


def test_a_missing_supervisors_directory_fails_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with Daemon("--supervisors", str(missing)) as daemon:
        assert_failed(daemon, str(missing))


def test_a_broken_config_file_fails_the_start(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[runtime]\nmailbox_size = 0\n", encoding="utf-8")
    with Daemon("--supervisors", str(tmp_path), "--config", str(config)) as daemon:
        assert_failed(daemon, str(config), "runtime.mailbox_size")


def test_a_service_that_fails_to_start_fails_the_start(tmp_path: Path) -> None:
    write_service(
        tmp_path,
        "fails.toml",
        f"""
        [service]
        name = "aria_fails"

        [[children]]
        id = "starter"
        actor = "{ACTORS}:FailsToStart"
        """,
    )
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        assert_failed(daemon, "aria_fails/starter", "cannot start on purpose")


def test_the_logged_exit_status_is_the_process_exit_status(tmp_path: Path) -> None:
    """After a failed start the last ``node_stopped`` line must not claim status 0."""
    write_service(
        tmp_path,
        "fails.toml",
        f"""
        [service]
        name = "aria_fails"

        [[children]]
        id = "starter"
        actor = "{ACTORS}:FailsToStart"
        """,
    )
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        status = daemon.wait()
        assert status != 0
        assert daemon.wait_for("node_stopped")["exit_status"] == status


def test_an_unknown_service_selection_fails_the_start(tmp_path: Path) -> None:
    security_service(tmp_path)
    with Daemon("--supervisors", str(tmp_path), "--service", "aria_nope") as daemon:
        assert_failed(daemon, "'aria_nope'")


def test_a_requires_cycle_fails_the_start(tmp_path: Path) -> None:
    write_service(tmp_path, "a.toml", '[service]\nname = "a"\nrequires = ["b"]\n')
    write_service(tmp_path, "b.toml", '[service]\nname = "b"\nrequires = ["a"]\n')
    with Daemon("--supervisors", str(tmp_path)) as daemon:
        assert_failed(daemon, "a -> b -> a")


def test_no_shipped_data_directory_fails_the_start_cleanly(tmp_path: Path) -> None:
    """An install without ``supervisors/`` (next to or inside the package) fails with a line.

    Not with a traceback and status 1, which a service manager reads as "a permanent
    service died".
    """
    site = tmp_path / "site"
    shutil.copytree(
        ROOT / "aria_actors", site / "aria_actors", ignore=shutil.ignore_patterns("__pycache__")
    )
    command = (sys.executable, "-c", "from aria_actors.daemon import main; main()")
    with Daemon(command=command, cwd=tmp_path, env={"PYTHONPATH": str(site)}) as daemon:
        failed = assert_failed(daemon, "directory found", "reinstall")
        assert daemon.proc.returncode != 1, failed
