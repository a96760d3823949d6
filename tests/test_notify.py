"""``aria_actors.notify`` against real ``AF_UNIX`` datagram sockets standing in for systemd.

Each test binds the socket systemd would (a path under a temporary directory, or a
random name in the Linux abstract namespace), points ``NOTIFY_SOCKET`` at it in an
environ dict, and reads the exact datagrams the notifier sends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aria_actors.notify import SystemdNotifier, Watchdog, watchdog_interval
from aria_actors.testing import wait_until

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX sockets")

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only"
)

SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS


class Receiver:
    """A bound ``AF_UNIX`` datagram socket: what systemd listens on."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)

    def recv(self, timeout: float = 2.0) -> str:
        """The next datagram, waiting at most ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        return self.sock.recv(65536).decode()

    def drain(self) -> list[str]:
        """Every datagram already queued, without waiting."""
        self.sock.setblocking(False)
        received = []
        while True:
            try:
                received.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                return received

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def socket_dir(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, or a short temporary directory when a socket path would not fit."""
    if len(str(tmp_path / "notify.sock")) <= SUN_PATH_MAX:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="aria-", dir="/tmp") as short:
        yield Path(short)


@pytest.fixture
def receiver(socket_dir: Path) -> Iterator[Receiver]:
    bound = Receiver(str(socket_dir / "notify.sock"))
    yield bound
    bound.close()


@pytest.fixture
def notifier(receiver: Receiver) -> Iterator[SystemdNotifier]:
    built = SystemdNotifier.from_environ({"NOTIFY_SOCKET": receiver.address})
    assert built is not None
    yield built
    built.close()


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


# --- the environment ---------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}, {"HOME": "/root"}])
def test_no_notify_socket_gives_none(environ: dict[str, str]) -> None:
    assert SystemdNotifier.from_environ(environ) is None


@pytest.mark.parametrize("address", ["relative/notify.sock", "vsock:2:1234", "@"])
def test_an_unsupported_notify_socket_gives_none_and_a_warning(
    address: str, logs: list[dict[str, Any]]
) -> None:
    assert SystemdNotifier.from_environ({"NOTIFY_SOCKET": address}) is None
    assert [entry["event"] for entry in logs] == ["systemd_notify_unsupported"]
    assert logs[0]["log_level"] == "warning"
    with pytest.raises(ValueError, match="unsupported NOTIFY_SOCKET"):
        SystemdNotifier(address)


def test_from_environ_leaves_the_environ_alone(receiver: Receiver) -> None:
    environ = {"NOTIFY_SOCKET": receiver.address}
    SystemdNotifier.from_environ(environ)
    assert environ == {"NOTIFY_SOCKET": receiver.address}


# --- the datagrams -----------------------------------------------------------------


def test_ready_sends_ready_status_and_mainpid(
    notifier: SystemdNotifier, receiver: Receiver
) -> None:
    notifier.ready(status="2 services running")
    assert receiver.recv() == f"READY=1\nSTATUS=2 services running\nMAINPID={os.getpid()}"
    notifier.ready()
    assert receiver.recv() == f"READY=1\nMAINPID={os.getpid()}"


def test_status_is_one_line(notifier: SystemdNotifier, receiver: Receiver) -> None:
    notifier.status("booting storage")
    assert receiver.recv() == "STATUS=booting storage"
    notifier.status("failed:\nstore crashed\r\ntwice")  # a newline would inject an assignment
    assert receiver.recv() == "STATUS=failed: store crashed twice"


def test_a_long_status_is_cut(notifier: SystemdNotifier, receiver: Receiver) -> None:
    notifier.status("x" * 100_000)
    assert receiver.recv() == "STATUS=" + "x" * 1024


def test_stopping(notifier: SystemdNotifier, receiver: Receiver) -> None:
    notifier.stopping()
    assert receiver.recv() == "STOPPING=1"
    notifier.stopping(status="stopping 3 services")
    assert receiver.recv() == "STOPPING=1\nSTATUS=stopping 3 services"


def test_reloading_carries_the_monotonic_clock_then_reloaded_says_ready(
    notifier: SystemdNotifier, receiver: Receiver
) -> None:
    before = monotonic_usec()
    notifier.reloading()
    after = monotonic_usec()
    first, second = receiver.recv().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after

    notifier.reloaded()
    assert receiver.recv() == "READY=1"
    notifier.reloading(status="reloading")
    assert receiver.recv().split("\n")[2] == "STATUS=reloading"
    notifier.reloaded(status="reloaded")
    assert receiver.recv() == "READY=1\nSTATUS=reloaded"


def test_watchdog_ping(notifier: SystemdNotifier, receiver: Receiver) -> None:
    notifier.watchdog_ping()
    assert receiver.recv() == "WATCHDOG=1"


def test_notify_joins_its_lines_and_sends_nothing_for_none(
    notifier: SystemdNotifier, receiver: Receiver
) -> None:
    notifier.notify()
    notifier.notify("EXTEND_TIMEOUT_USEC=5000000", "STATUS=slow")
    assert receiver.drain() == ["EXTEND_TIMEOUT_USEC=5000000\nSTATUS=slow"]


@linux_only
def test_abstract_socket() -> None:
    name = f"aria-test-{secrets.token_hex(8)}"
    abstract = Receiver("\0" + name)
    try:
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert notifier is not None
        assert notifier.address == "\0" + name
        notifier.ready(status="up")
        assert abstract.recv() == f"READY=1\nSTATUS=up\nMAINPID={os.getpid()}"
        notifier.close()
    finally:
        abstract.close()


def test_close_drops_later_notifications_silently(
    notifier: SystemdNotifier, receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    notifier.close()
    notifier.ready()
    notifier.close()
    assert receiver.drain() == []
    assert logs == []
    assert notifier.failures == 0


# --- systemd gone ------------------------------------------------------------------


@pytest.mark.parametrize("unlink", [True, False], ids=["path-removed", "nobody-listening"])
def test_a_vanished_socket_does_not_raise_and_logs_once(
    notifier: SystemdNotifier, receiver: Receiver, unlink: bool, logs: list[dict[str, Any]]
) -> None:
    receiver.close()
    if unlink:
        os.unlink(receiver.address)
    notifier.ready(status="up")
    notifier.watchdog_ping()
    notifier.stopping()
    assert notifier.failures == 3
    assert [entry["event"] for entry in logs] == ["systemd_notify_failed"]
    entry = logs[0]
    assert entry["log_level"] == "warning"
    assert entry["socket"] == receiver.address
    assert entry["notification"] == "READY=1"
    assert ("FileNotFoundError" if unlink else "ConnectionRefusedError") in entry["error"]


def test_notifications_reach_systemd_again_once_its_socket_is_back(
    notifier: SystemdNotifier, receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    receiver.close()
    os.unlink(receiver.address)
    notifier.watchdog_ping()
    back = Receiver(receiver.address)  # systemd re-executed and bound its socket again
    try:
        notifier.watchdog_ping()
        assert back.recv() == "WATCHDOG=1"
    finally:
        back.close()
    assert notifier.failures == 1
    assert len(logs) == 1


# --- the watchdog ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "40000"}, 0.02),
        ({"WATCHDOG_USEC": "40000", "WATCHDOG_PID": str(os.getpid())}, 0.02),
        ({"WATCHDOG_USEC": "40000", "WATCHDOG_PID": ""}, 0.02),
        ({"WATCHDOG_USEC": "40000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "40000", "WATCHDOG_PID": "someone"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "thirty"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-40000"}, None),
        ({"WATCHDOG_PID": str(os.getpid())}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ) == expected


def test_watchdog_rejects_a_non_positive_interval(notifier: SystemdNotifier) -> None:
    for interval in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="must be positive"):
            Watchdog(notifier, interval)


async def pings_within(
    receiver: Receiver, seconds: float, *, enough: int | None = None
) -> list[str]:
    """The datagrams received in the next ``seconds`` while the loop keeps running
    (returning early once there are ``enough``)."""
    received: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (enough is None or len(received) < enough):
        await asyncio.sleep(0.01)
        received.extend(receiver.drain())
    return received


async def test_the_watchdog_pings_at_its_cadence_and_stops_when_stopped(
    notifier: SystemdNotifier, receiver: Receiver
) -> None:
    interval = watchdog_interval({"WATCHDOG_USEC": "40000", "WATCHDOG_PID": str(os.getpid())})
    assert interval == 0.02
    watchdog = Watchdog(notifier, interval)
    watchdog.start(asyncio.get_running_loop())
    assert watchdog.running
    assert receiver.drain() == ["WATCHDOG=1"]  # the first ping goes out at once

    pings = await pings_within(receiver, 1.0)
    assert set(pings) == {"WATCHDOG=1"}
    assert len(pings) >= 2  # 50 expected; a slow machine still manages 2
    assert len(pings) <= 1.0 / (interval / 2)  # a timer, not a busy loop

    watchdog.stop()
    assert not watchdog.running
    receiver.drain()
    assert await pings_within(receiver, 10 * interval) == []
    watchdog.stop()  # idempotent


async def test_a_stalled_loop_sends_no_pings(notifier: SystemdNotifier, receiver: Receiver) -> None:
    watchdog = Watchdog(notifier, 0.05)
    watchdog.start(asyncio.get_running_loop())
    try:
        assert len(await pings_within(receiver, 1.0, enough=1)) >= 1
        receiver.drain()
        time.sleep(0.3)  # noqa: ASYNC251 - a handler blocking the loop for 6 intervals
        assert receiver.drain() == []  # not one ping while the loop was stalled
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(receiver.drain()) <= 1  # the overdue ping, not a burst of 6 to catch up
        resumed = await pings_within(receiver, 1.0, enough=2)
        assert len(resumed) >= 2  # the loop runs again: so do the pings
    finally:
        watchdog.stop()


async def test_the_watchdog_keeps_going_when_systemd_is_gone(
    notifier: SystemdNotifier, receiver: Receiver, logs: list[dict[str, Any]]
) -> None:
    receiver.close()
    os.unlink(receiver.address)
    watchdog = Watchdog(notifier, 0.02)
    watchdog.start(asyncio.get_running_loop())
    try:
        await wait_until(lambda: notifier.failures >= 3, timeout=5.0)
        assert watchdog.running
    finally:
        watchdog.stop()
    assert [entry["event"] for entry in logs] == ["systemd_notify_failed"]


async def test_starting_again_restarts_instead_of_doubling_the_pings(
    notifier: SystemdNotifier, receiver: Receiver
) -> None:
    watchdog = Watchdog(notifier, 0.05)
    loop = asyncio.get_running_loop()
    watchdog.start(loop)
    watchdog.start(loop)
    try:
        assert receiver.drain() == ["WATCHDOG=1", "WATCHDOG=1"]  # each start pings at once
        assert len(await pings_within(receiver, 1.0, enough=2)) >= 2
    finally:
        watchdog.stop()
    receiver.drain()
    assert await pings_within(receiver, 0.25) == []  # one stop cancelled the only timer
