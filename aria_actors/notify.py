"""The systemd notification protocol (``sd_notify``), without libsystemd.

Under a unit with ``Type=notify`` systemd passes the path of a datagram socket in
``NOTIFY_SOCKET`` and waits for the service to say ``READY=1`` before it counts the
start as done (and before ``systemctl start`` returns). The same socket carries a
free-form ``STATUS=`` line (shown by ``systemctl status``), ``STOPPING=1``,
``RELOADING=1`` for a reload on SIGHUP, and ``WATCHDOG=1`` keep-alive pings when the
unit sets ``WatchdogSec=``. A notification is one datagram of ``KEY=VALUE`` lines
joined by ``\\n``.

Usage in a daemon (``os.environ`` holds what systemd set)::

    notifier = SystemdNotifier.from_environ(os.environ)   # None when not under systemd
    interval = watchdog_interval(os.environ)              # None without WatchdogSec=
    if notifier is not None and interval is not None:
        Watchdog(notifier, interval).start(asyncio.get_running_loop())
    ...                                                   # boot
    if notifier is not None:
        notifier.ready(status="3 services running")

Failure modes, on purpose: nothing here ever raises into the caller once a notifier
exists. A send that fails (systemd restarted or gone, the socket's buffer full, the
process not allowed to create an ``AF_UNIX`` socket) drops that notification, is
counted in :attr:`SystemdNotifier.failures`, and is logged once per notifier as a
``systemd_notify_failed`` warning on the ``aria_node`` structlog logger; the node
carries on. A notification lost that way can cost a start timeout (``READY=1``) or a
watchdog restart (``WATCHDOG=1``), which is systemd's call, not the node's.

Only the main process should notify: the units ship with ``NotifyAccess=main``, and
child processes (which inherit ``NOTIFY_SOCKET``) are ignored by systemd.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

import structlog

__all__ = ["SystemdNotifier", "Watchdog", "watchdog_interval"]

STATUS_MAX_CHARS = 1024
"""A ``STATUS=`` text is cut to this many characters (systemd drops a notification
datagram larger than 4096 bytes as a whole)."""


def _status_line(text: str) -> str:
    """``STATUS=text`` on one line: a newline would start a new assignment."""
    return "STATUS=" + " ".join(text.splitlines())[:STATUS_MAX_CHARS]


def _monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds, the clock systemd compares reloads on."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SystemdNotifier:
    """Sends notifications to the systemd service manager over ``NOTIFY_SOCKET``.

    ``address`` is ``NOTIFY_SOCKET`` as systemd sets it: an absolute path of an
    ``AF_UNIX`` datagram socket (``/run/systemd/notify``), or ``@name`` for a socket
    in the Linux abstract namespace (the ``@`` becomes a leading NUL byte). Other
    forms (a relative path, ``vsock:`` addresses) raise :class:`ValueError`;
    :meth:`from_environ` turns that into ``None`` and a warning instead.

    The socket is created on the first notification, non-blocking and
    close-on-exec, and each notification is one ``sendto`` of one datagram: nothing
    is connected, so a systemd that restarts and binds its socket again is reached
    by the next notification without any reconnecting. No method ever raises or
    blocks; see the module's documentation for what a failed send does. The methods
    may be called from any thread; they hold no lock, so a failure that happens in
    two threads at once may be logged twice.
    """

    def __init__(self, address: str) -> None:
        if address.startswith("@") and len(address) > 1:
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address
        else:
            raise ValueError(
                f"unsupported NOTIFY_SOCKET {address!r}: expected an absolute path or @abstract"
            )
        self._sock: socket.socket | None = None
        self._closed = False
        self._failures = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier | None:
        """The notifier for ``environ["NOTIFY_SOCKET"]``, or ``None`` when there is none.

        ``None`` when ``NOTIFY_SOCKET`` is unset or empty (not started by systemd, or
        by a unit that is not ``Type=notify``), and when its value is a form this
        module does not speak (logged as a ``systemd_notify_unsupported`` warning).
        Never raises. ``environ`` is only read: ``NOTIFY_SOCKET`` is left in place.
        """
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        try:
            return cls(address)
        except ValueError as exc:
            structlog.get_logger("aria_node").warning("systemd_notify_unsupported", error=str(exc))
            return None

    @property
    def address(self) -> str:
        """The socket address notifications go to (a leading NUL for an abstract one)."""
        return self._address

    @property
    def failures(self) -> int:
        """How many notifications were dropped because sending them failed."""
        return self._failures

    def notify(self, *lines: str) -> None:
        """Send ``lines`` as one datagram, joined by ``\\n`` (``notify("READY=1")``).

        The lines are sent as given: each should be one ``KEY=VALUE`` assignment with
        no newline in it (the helper methods below take care of that for ``STATUS=``).
        Nothing is sent when ``lines`` is empty or the notifier is closed. Never raises.
        """
        if not lines or self._closed:
            return
        data = "\n".join(lines).encode("utf-8", errors="replace")
        try:
            sock = self._sock
            if sock is None:
                sock = self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
            sock.sendto(data, self._address)
        except OSError as exc:
            self._failures += 1
            if self._failures == 1:
                structlog.get_logger("aria_node").warning(
                    "systemd_notify_failed",
                    socket=self._address.replace("\0", "@", 1),
                    notification=lines[0],
                    error=f"{type(exc).__name__}: {exc}",
                    note="further failures of this notifier are not logged",
                )

    def ready(self, status: str | None = None) -> None:
        """Startup is complete: ``READY=1``, then ``STATUS=status`` and ``MAINPID=<pid>``.

        ``systemctl start`` returns (and units ordered after this one start) only
        once this arrives; without it the start fails after ``TimeoutStartSec=``.
        """
        lines = ["READY=1"]
        if status is not None:
            lines.append(_status_line(status))
        lines.append(f"MAINPID={os.getpid()}")
        self.notify(*lines)

    def status(self, text: str) -> None:
        """``STATUS=text`` (one line, at most :data:`STATUS_MAX_CHARS` characters)."""
        self.notify(_status_line(text))

    def stopping(self, status: str | None = None) -> None:
        """Shutdown has begun: ``STOPPING=1`` (and ``STATUS=status``)."""
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(_status_line(status))
        self.notify(*lines)

    def reloading(self, status: str | None = None) -> None:
        """A reload (SIGHUP) has begun: ``RELOADING=1`` and ``MONOTONIC_USEC=<now>``.

        ``MONOTONIC_USEC`` is ``CLOCK_MONOTONIC`` in microseconds, which systemd uses
        to match this message with the reload it asked for. Send :meth:`reloaded`
        when the reload is over, whether it succeeded or not.
        """
        lines = ["RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}"]
        if status is not None:
            lines.append(_status_line(status))
        self.notify(*lines)

    def reloaded(self, status: str | None = None) -> None:
        """The reload is over: ``READY=1`` again (and ``STATUS=status``)."""
        lines = ["READY=1"]
        if status is not None:
            lines.append(_status_line(status))
        self.notify(*lines)

    def watchdog_ping(self) -> None:
        """``WATCHDOG=1``: the service is alive (see :class:`Watchdog`)."""
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket; later notifications are dropped silently. Idempotent."""
        self._closed = True
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between watchdog pings: half of ``WATCHDOG_USEC``, or ``None``.

    systemd sets ``WATCHDOG_USEC`` from the unit's ``WatchdogSec=``, and kills the
    service (``WatchdogSignal=``, SIGABRT by default) and counts it as failed when no
    ``WATCHDOG=1`` arrives for that long; pinging at half the interval leaves a
    margin, as ``sd_watchdog_enabled(3)`` recommends. ``None`` (no watchdog) when
    ``WATCHDOG_USEC`` is unset, not an integer, or not positive, and when
    ``WATCHDOG_PID`` is set but is not this process's pid (the variables were
    inherited by a child: only the process systemd watches should ping, and an
    unparsable ``WATCHDOG_PID`` counts as someone else's). Never raises.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2_000_000


class Watchdog:
    """Sends ``WATCHDOG=1`` every ``interval`` seconds from an event loop's timer.

    The pings are plain ``loop.call_later`` callbacks, not a task and not a thread,
    on purpose: they run only while the event loop runs. A loop stalled by a
    blocking call or a busy handler sends no pings, so systemd notices and restarts
    the node once ``WatchdogSec=`` has passed, which is what the watchdog is for.
    (A thread would keep pinging from a wedged node.) After a stall the next ping
    goes out as soon as the loop runs again, then the cadence resumes; pings never
    come in bursts.

    Start it as early as the loop runs, before booting services: systemd arms the
    watchdog when it starts the process, not at ``READY=1``.
    """

    def __init__(self, notifier: SystemdNotifier, interval: float) -> None:
        """Raises: ValueError: ``interval`` is not a positive number of seconds."""
        if not interval > 0:
            raise ValueError(f"watchdog interval must be positive, not {interval!r}")
        self._notifier = notifier
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    @property
    def interval(self) -> float:
        """Seconds between two pings."""
        return self._interval

    @property
    def running(self) -> bool:
        """Whether pings are scheduled (between :meth:`start` and :meth:`stop`)."""
        return self._handle is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ping now, then every :attr:`interval` seconds on ``loop`` until :meth:`stop`.

        Call it from the thread that runs ``loop`` (from a coroutine or callback on
        it): ``call_later`` is not thread-safe. Starting a running watchdog again
        restarts it, on the new loop.
        """
        self.stop()
        self._loop = loop
        self._tick()

    def stop(self) -> None:
        """Cancel the next ping; no ping is sent after this returns. Idempotent."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()

    def _tick(self) -> None:
        assert self._loop is not None
        self._notifier.watchdog_ping()
        self._handle = self._loop.call_later(self._interval, self._tick)
