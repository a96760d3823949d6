"""The audit log of secret operations: append-only, hash-chained JSON lines.

Every secret operation leaves one line::

    {"seq": 1, "time": "2025-01-01T12:00:00.000000Z", "actor": "aria_data.db",
     "op": "get", "path": "aria_data/postgres", "version": null, "outcome": "ok",
     "prev": "000...000", "hash": "5b1f..."}

``prev`` is the ``hash`` of the record before (64 zeros for the first) and ``hash`` is
the hex BLAKE3 of the record's canonical JSON without ``hash`` (keys sorted, no
spaces). Changing, removing, inserting or reordering a record breaks the chain from
that record on, and :func:`verify` reports the first line that does not fit. The
chain is unkeyed: it proves the log was not altered *unless* everything after the
alteration was recomputed too, and it cannot show that records were cut off at the
end; anchor the head (:attr:`AuditLog.head`) elsewhere to detect that.

A record can never hold a secret value: :meth:`AuditLog.record` takes who, what,
which path and version and an outcome (``"ok"`` or an error class name), nothing
else, and ``op`` and ``outcome`` must be identifiers.

Durability: each record is written to the file (``O_APPEND``, mode 0600) before
``record`` returns, so it survives the process crashing; it is fsynced within
``fsync_interval`` seconds (default 0.2) and on :meth:`AuditLog.close`, so an
operating-system crash or power loss loses at most the last ``fsync_interval``
seconds of records. ``fsync_interval=0`` fsyncs every write.

On open the log reads its last line to continue the chain. A last line cut short
(a crash in the middle of a write, a full disk) or one that is not a valid record
stops the log with :class:`AuditLogCorrupt`: it is never silently continued or
repaired. Run ``python -m aria_actors.services.security.audit verify PATH`` to see
where, keep the file as evidence and move it aside; a new file starts a new chain.
The file is locked (``flock``) while open, so two logs never interleave their chains.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from blake3 import blake3

from ..._runtime.blocking import run_blocking
from .api import SecretsUnavailable, StoreCorrupt

GENESIS: Final = "0" * 64
"""The ``prev`` of the first record."""

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TAIL_CHUNK: Final = 4096
_MAX_LINE: Final = 1 << 20


class AuditLogCorrupt(StoreCorrupt):
    """The audit log's last line is cut short or is not a valid record; nothing is
    appended until an operator moves the file aside."""


class AuditRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One line of the audit log (in this field order on disk)."""

    seq: int
    time: str
    actor: str
    op: str
    path: str | None
    version: int | None
    outcome: str
    prev: str
    hash: str


class AuditReport(msgspec.Struct, frozen=True):
    """What :func:`verify` found.

    ``records`` is the number of records that verified (all of them when ``ok``);
    ``first_bad_line`` the 1-based line number of the first record that does not fit
    the chain (``None`` when ``ok``) and ``reason`` says why, in a sentence.
    """

    ok: bool
    records: int
    first_bad_line: int | None = None
    reason: str = ""


_record_decoder: Final = msgspec.json.Decoder(AuditRecord)


def record_hash(fields: dict[str, Any]) -> str:
    """The hex BLAKE3 of ``fields`` (a record without ``hash``) as canonical JSON."""
    return blake3(msgspec.json.encode(fields, order="sorted")).hexdigest()


def _unsigned(record: AuditRecord) -> dict[str, Any]:
    fields = msgspec.structs.asdict(record)
    del fields["hash"]
    return fields


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` to record: ``"ok"``, or the error's class name."""
    return "ok" if error is None else type(error).__name__


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    """The audit log in ``path``; opened by the first :meth:`record` (or :meth:`open`).

    Records are chained in the order ``record`` is called; concurrent callers on one
    event loop are serialised without locks (the chain is extended synchronously, the
    writes are batched by one writer task in a worker thread). ``fsync_interval``
    bounds how long a written record may wait for its fsync.
    """

    def __init__(self, path: Path, fsync_interval: float = 0.2) -> None:
        if fsync_interval < 0:
            raise ValueError(f"fsync_interval must be 0 or more, not {fsync_interval}")
        self.path = Path(path)
        self.fsync_interval = float(fsync_interval)
        self._fd: int | None = None
        self._seq = 0
        self._head = GENESIS
        self._opening: asyncio.Lock | None = None
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self._syncer: asyncio.Task[None] | None = None
        self._fsyncing: asyncio.Future[None] | None = None
        self._written = 0  # records written to the file
        self._synced = 0  # records known to be fsynced
        self._last_fsync = 0.0
        self._failure: BaseException | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, seq={self._seq})"

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record (``(0, GENESIS)`` for an empty log)."""
        return self._seq, self._head

    async def __aenter__(self) -> AuditLog:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open (creating it, mode 0600, and its directory, 0700) and lock the file, and
        read its last record to continue the chain. Later calls return at once.

        Raises:
            AuditLogCorrupt: the last line is cut short or is not a valid record.
            SecretsUnavailable: the file cannot be opened, is locked by another log
                (another process or ``AuditLog``), or this log is closed.
        """
        if self._fd is not None and not self._closed:
            return
        self._check_usable()
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            self._check_usable()
            if self._fd is None:
                self._fd, self._seq, self._head = await run_blocking(self._open_file)
                self._synced = self._written = 0

    def _check_usable(self) -> None:
        if self._closed:
            raise SecretsUnavailable(f"the audit log {self.path} is closed")
        if self._failure is not None:
            raise SecretsUnavailable(
                f"the audit log {self.path} failed and takes no more records: {self._failure}"
            ) from self._failure

    def _open_file(self) -> tuple[int, int, str]:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SecretsUnavailable(
                f"cannot open the audit log {self.path}: {exc.strerror or exc}"
            ) from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise SecretsUnavailable(
                    f"the audit log {self.path} is in use by another process or log"
                ) from exc
            seq, head = _read_head(self.path, fd)
            _fsync_directory(self.path.parent)
        except OSError as exc:
            os.close(fd)
            raise SecretsUnavailable(
                f"cannot read the audit log {self.path}: {exc.strerror or exc}"
            ) from exc
        except BaseException:
            os.close(fd)
            raise
        return fd, seq, head

    async def record(
        self, actor: str, op: str, path: str | None, version: int | None, outcome: str
    ) -> AuditRecord:
        """Append one record; it is in the file when this returns (fsynced within
        ``fsync_interval``). The record, as written.

        ``actor`` says who asked, ``op`` what (``get``, ``put``, ``delete``, ...),
        ``path`` and ``version`` what it was about (``None`` if nothing), ``outcome``
        is ``"ok"`` or an error class name (:func:`outcome_of`). There is no place for
        a value. If the caller is cancelled the record is still written.

        Raises:
            TypeError: a field of the wrong type.
            ValueError: an empty ``actor``, or ``op``/``outcome`` not an identifier.
            AuditLogCorrupt, SecretsUnavailable: see :meth:`open`; also when a write
                failed (the log then takes no more records: the chain on disk would
                have a hole).
        """
        if not isinstance(actor, str) or not actor:
            raise _field_error("actor", "a non-empty str", actor)
        for name, value in (("op", op), ("outcome", outcome)):
            if not isinstance(value, str) or not _IDENTIFIER.match(value):
                raise _field_error(name, "an identifier (letters, digits, '_')", value)
        if path is not None and not isinstance(path, str):
            raise _field_error("path", "a str or None", path)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise TypeError(
                f"audit record: version must be an int or None, not {type(version).__name__}"
            )
        await self.open()
        self._check_usable()
        fields: dict[str, Any] = {
            "seq": self._seq + 1,
            "time": _now(),
            "actor": actor,
            "op": op,
            "path": path,
            "version": version,
            "outcome": outcome,
            "prev": self._head,
        }
        entry = AuditRecord(**fields, hash=record_hash(fields))
        line = msgspec.json.encode(entry) + b"\n"
        # The chain advances here, synchronously: call order is chain order.
        self._seq, self._head = entry.seq, entry.hash
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(line)
        self._waiters.append(done)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        await asyncio.shield(done)
        return entry

    async def _drain(self) -> None:
        """Write the pending lines in batches, in order; settle their futures."""
        while self._pending:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            now = time.monotonic()
            sync = now - self._last_fsync >= self.fsync_interval
            try:
                assert self._fd is not None
                await run_blocking(_write_all, self._fd, b"".join(batch), sync)
            except BaseException as exc:
                self._failure = exc
                error = SecretsUnavailable(
                    f"cannot write the audit log {self.path}: {exc}; it takes no more records"
                )
                error.__cause__ = exc
                for waiter in (*waiters, *self._waiters):
                    if not waiter.done():
                        waiter.set_exception(error)
                        waiter.exception()  # retrieved: no warning if nobody awaits it
                self._pending, self._waiters = [], []
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            self._written += len(batch)
            if sync:
                self._last_fsync, self._synced = now, self._written
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._synced < self._written and (self._syncer is None or self._syncer.done()):
                self._syncer = asyncio.ensure_future(self._sync_later())

    async def _sync_later(self) -> None:
        """fsync once ``fsync_interval`` has passed since the last fsync."""
        await asyncio.sleep(max(0.0, self._last_fsync + self.fsync_interval - time.monotonic()))
        await self._sync()

    async def _sync(self) -> None:
        if self._fd is None or self._failure is not None or self._synced >= self._written:
            return
        target = self._written
        # In its own task: cancelling the syncer (close) never abandons an fsync that
        # is running in a thread, so close() can wait for it before closing the fd.
        self._fsyncing = asyncio.ensure_future(run_blocking(os.fsync, self._fd))
        try:
            await asyncio.shield(self._fsyncing)
        except OSError as exc:
            self._failure = exc
            return
        self._last_fsync = time.monotonic()
        self._synced = max(self._synced, target)

    async def close(self) -> None:
        """Write what is pending, fsync, unlock and close the file. Idempotent; every
        later ``record`` raises ``SecretsUnavailable``."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._syncer
        if self._fsyncing is not None:
            await asyncio.wait([self._fsyncing])
            if not self._fsyncing.cancelled():
                self._fsyncing.exception()  # retrieved; close() fsyncs again below
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                await self._sync_fd(fd)
            os.close(fd)

    async def _sync_fd(self, fd: int) -> None:
        if self._synced < self._written and self._failure is None:
            await run_blocking(os.fsync, fd)
            self._synced = self._written


def _field_error(name: str, wanted: str, value: object) -> Exception:
    """A TypeError for a value of the wrong type, else a ValueError. The value itself
    is never shown: a caller passing a secret by mistake must not get it logged."""
    if isinstance(value, str) or value is None:
        size = "an empty str" if not value else f"a str of {len(value)} characters"
        return ValueError(f"audit record: {name} must be {wanted}, not {size}")
    return TypeError(f"audit record: {name} must be {wanted}, not {type(value).__name__}")


def _write_all(fd: int, data: bytes, sync: bool) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if sync:
        os.fsync(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:  # pragma: no cover - file systems without directory fsync
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _read_head(path: Path, fd: int) -> tuple[int, str]:
    """``(seq, hash)`` of the last record in the open file (``(0, GENESIS)`` if empty).

    Raises:
        AuditLogCorrupt: the file does not end with a newline (a torn line), or its
            last line is not a record whose hash matches its content.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS
    if os.pread(fd, 1, size - 1) != b"\n":
        raise AuditLogCorrupt(
            f"the audit log {path} ends with a line cut short (a crash or a full disk "
            "while writing?); run `python -m aria_actors.services.security.audit verify "
            f"{path}`, keep the file and move it aside to start a new log"
        )
    end = size - 1  # the final newline
    start = end
    while start > 0:
        step = min(_TAIL_CHUNK, start)
        chunk = os.pread(fd, step, start - step)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            start = start - step + cut + 1
            break
        start -= step
        if end - start > _MAX_LINE:
            break
    line = os.pread(fd, end - start, start)
    problem = _check_record(line)
    if isinstance(problem, str):
        raise AuditLogCorrupt(
            f"the last line of the audit log {path} is not a valid record ({problem}); "
            "run `python -m aria_actors.services.security.audit verify "
            f"{path}`, keep the file and move it aside to start a new log"
        )
    return problem.seq, problem.hash


def _check_record(line: bytes) -> AuditRecord | str:
    """The record on ``line`` (without its newline) if its hash matches, else why not."""
    try:
        record = _record_decoder.decode(line)
    except msgspec.DecodeError as exc:
        return f"not a record: {exc}"
    expected = record_hash(_unsigned(record))
    if record.hash != expected:
        return "its hash does not match its content: the record was altered"
    return record


def verify(path: Path) -> AuditReport:
    """Recompute the chain of the audit log at ``path``; where it first breaks.

    Each line must be a complete record (ending with a newline) whose ``hash``
    matches its content, whose ``prev`` is the previous record's ``hash`` (``GENESIS``
    for the first) and whose ``seq`` is one more than the previous one. An empty file
    is a valid empty log. Blocking: call it in a thread.

    Raises:
        OSError: the file cannot be read.
    """
    previous_hash, previous_seq = GENESIS, 0
    count = 0
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            if not raw.endswith(b"\n"):
                return AuditReport(
                    False, count, number, "the last line is cut short (a torn write)"
                )
            checked = _check_record(raw[:-1])
            if isinstance(checked, str):
                return AuditReport(False, count, number, checked)
            if checked.prev != previous_hash:
                return AuditReport(
                    False,
                    count,
                    number,
                    f"its prev does not match the hash of line {number - 1}: a record was "
                    "removed, inserted or reordered here"
                    if number > 1
                    else "the first record does not start the chain (prev is not zeros): "
                    "records were removed before it",
                )
            if checked.seq != previous_seq + 1:
                return AuditReport(
                    False,
                    count,
                    number,
                    f"seq {checked.seq} follows seq {previous_seq}: records were removed, "
                    "inserted or reordered here",
                )
            previous_hash, previous_seq = checked.hash, checked.seq
            count += 1
    return AuditReport(True, count)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aria_actors.services.security.audit verify PATH``.

    Prints the report; exit status 0 if the chain is intact, 1 if it is broken
    (tampered or torn), 2 if the file cannot be read (or a usage error).
    """
    parser = argparse.ArgumentParser(
        prog="python -m aria_actors.services.security.audit",
        description="Check the hash chain of an Aria audit log.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify the hash chain of an audit log")
    check.add_argument("path", type=Path, help="the audit log file")
    arguments = parser.parse_args(argv)
    try:
        report = verify(arguments.path)
    except OSError as exc:
        print(f"{arguments.path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if report.ok:
        print(f"{arguments.path}: ok, {report.records} records, the chain is intact")
        return 0
    print(
        f"{arguments.path}: BROKEN at line {report.first_bad_line}: {report.reason} "
        f"({report.records} records verified before it)"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
