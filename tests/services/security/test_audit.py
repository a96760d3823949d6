"""The hash-chained audit log: the chain, tamper detection, durability, the CLI."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from aria_actors.services.security.api import SecretsUnavailable, StoreCorrupt
from aria_actors.services.security.audit import (
    GENESIS,
    AuditLog,
    AuditLogCorrupt,
    AuditRecord,
    AuditReport,
    main,
    outcome_of,
    record_hash,
    verify,
)

from .conftest import exists, mode, read, write

FIELDS = ["seq", "time", "actor", "op", "path", "version", "outcome", "prev", "hash"]
LINES = 6


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "audit.log"


async def write_log(path: Path, count: int = LINES) -> list[AuditRecord]:
    async with AuditLog(path) as log:
        return [
            await log.record(f"actor-{n}", "put" if n % 2 else "get", f"app/s{n}", n, "ok")
            for n in range(1, count + 1)
        ]


def lines(path: Path) -> list[bytes]:
    return read(path).splitlines(keepends=True)


def rewrite(path: Path, new_lines: list[bytes]) -> None:
    write(path, b"".join(new_lines))


def resign(record: dict[str, Any]) -> bytes:
    """``record`` with its hash recomputed, as a line (what a careful forger writes)."""
    fields = {name: record[name] for name in FIELDS if name != "hash"}
    return json.dumps(fields | {"hash": record_hash(fields)}).encode() + b"\n"


# -- the chain ----------------------------------------------------------------------------


async def test_records_form_a_chain_that_verifies(log_file: Path) -> None:
    records = await write_log(log_file)
    assert verify(log_file) == AuditReport(ok=True, records=LINES)
    assert [r.seq for r in records] == list(range(1, LINES + 1))
    assert records[0].prev == GENESIS
    for before, after in itertools.pairwise(records):
        assert after.prev == before.hash
    on_disk = [json.loads(line) for line in lines(log_file)]
    assert list(on_disk[0]) == FIELDS
    assert on_disk[2] == {name: getattr(records[2], name) for name in FIELDS}
    first = on_disk[0]
    unsigned = {name: first[name] for name in FIELDS if name != "hash"}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    from blake3 import blake3

    assert first["hash"] == blake3(canonical).hexdigest()
    assert first["time"].endswith("Z")
    assert datetime.fromisoformat(first["time"].replace("Z", "+00:00")).utcoffset() is not None


async def test_the_file_is_private_and_an_empty_log_verifies(log_file: Path) -> None:
    async with AuditLog(log_file) as log:
        assert log.head == (0, GENESIS)
    assert mode(log_file) == 0o600
    assert read(log_file) == b""
    assert verify(log_file) == AuditReport(ok=True, records=0)


async def test_null_path_and_version_and_error_outcomes(log_file: Path) -> None:
    async with AuditLog(log_file) as log:
        record = await log.record("console", "list", None, None, outcome_of(None))
        failed = await log.record("x", "get", "a", 3, outcome_of(KeyError("secret!")))
    assert (record.path, record.version, record.outcome) == (None, None, "ok")
    assert failed.outcome == "KeyError"
    assert b"secret!" not in read(log_file)
    assert verify(log_file).ok


async def test_reopening_continues_the_chain(log_file: Path) -> None:
    first = await write_log(log_file, 3)
    async with AuditLog(log_file) as log:
        assert log.head == (3, first[-1].hash)
        more = await log.record("b", "delete", "app/x", None, "ok")
    assert (more.seq, more.prev) == (4, first[-1].hash)
    assert verify(log_file) == AuditReport(ok=True, records=4)


async def test_the_first_record_opens_the_file(log_file: Path) -> None:
    log = AuditLog(log_file)
    assert not exists(log_file)
    await log.record("a", "get", "p", None, "ok")
    await log.close()
    assert verify(log_file).records == 1


# -- no secret values ---------------------------------------------------------------------


def test_record_has_no_place_for_a_value() -> None:
    parameters = list(inspect.signature(AuditLog.record).parameters)
    assert parameters == ["self", "actor", "op", "path", "version", "outcome"]
    assert set(AuditRecord.__struct_fields__) == set(FIELDS)


async def test_values_cannot_be_smuggled_in(log_file: Path) -> None:
    async with AuditLog(log_file) as log:
        with pytest.raises(TypeError):
            await log.record("a", "put", "p", 1, "ok", data={"password": "x"})  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="outcome must be an identifier") as caught:
            await log.record("a", "put", "p", 1, "failed: password hunter2 is wrong")
        assert "hunter2" not in str(caught.value)
        with pytest.raises(ValueError, match="op must be an identifier"):
            await log.record("a", "put hunter2", "p", 1, "ok")
        with pytest.raises(TypeError, match="version must be an int or None, not str"):
            await log.record("a", "put", "p", "hunter2", "ok")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="version"):
            await log.record("a", "put", "p", True, "ok")
        with pytest.raises(TypeError, match="path must be a str or None, not dict"):
            await log.record("a", "put", {"k": "v"}, 1, "ok")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="actor must be a non-empty str"):
            await log.record("", "put", "p", 1, "ok")
    assert read(log_file) == b""


# -- tampering ----------------------------------------------------------------------------


def altered(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return 7
    if isinstance(value, int):
        return value + 1
    if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return ("1" if value[0] != "1" else "2") + value[1:]
    return value + "x"


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("index", [0, 2, LINES - 1])
async def test_editing_any_field_of_any_line_is_detected_there(
    log_file: Path, field: str, index: int
) -> None:
    await write_log(log_file)
    content = lines(log_file)
    record = json.loads(content[index])
    record[field] = altered(record[field])
    content[index] = json.dumps(record).encode() + b"\n"
    rewrite(log_file, content)
    report = verify(log_file)
    assert not report.ok
    assert report.first_bad_line == index + 1
    assert report.records == index


@pytest.mark.parametrize("index", [0, 2, LINES - 1])
async def test_an_edit_with_a_recomputed_hash_is_detected_at_the_next_line(
    log_file: Path, index: int
) -> None:
    await write_log(log_file)
    content = lines(log_file)
    record = json.loads(content[index])
    record["outcome"] = "SecretsAccessDenied"
    content[index] = resign(record)
    rewrite(log_file, content)
    report = verify(log_file)
    if index == LINES - 1:
        # Nothing follows the last record: only an anchored head can tell (see the docs).
        assert report.ok
    else:
        assert (report.ok, report.first_bad_line) == (False, index + 2)
        assert "removed, inserted or reordered" in report.reason


@pytest.mark.parametrize("index", [0, 1, 3])
async def test_deleting_a_line_is_detected(log_file: Path, index: int) -> None:
    await write_log(log_file)
    content = lines(log_file)
    del content[index]
    rewrite(log_file, content)
    report = verify(log_file)
    assert (report.ok, report.first_bad_line, report.records) == (False, index + 1, index)


async def test_cutting_whole_records_off_the_end_needs_the_head(log_file: Path) -> None:
    async with AuditLog(log_file) as log:
        for n in range(3):
            await log.record("a", "get", f"p{n}", None, "ok")
        head = log.head
    rewrite(log_file, lines(log_file)[:-1])
    assert verify(log_file).ok  # undetectable by the chain alone...
    async with AuditLog(log_file) as reopened:
        assert reopened.head != head  # ...but an anchored head shows it


@pytest.mark.parametrize("index", [0, 2, LINES - 2])
async def test_swapping_two_lines_is_detected(log_file: Path, index: int) -> None:
    await write_log(log_file)
    content = lines(log_file)
    content[index], content[index + 1] = content[index + 1], content[index]
    rewrite(log_file, content)
    report = verify(log_file)
    assert (report.ok, report.first_bad_line) == (False, index + 1)


@pytest.mark.parametrize("index", [0, 3, LINES])
async def test_inserting_a_forged_line_is_detected(log_file: Path, index: int) -> None:
    records = await write_log(log_file)
    content = lines(log_file)
    forged = {
        "seq": index + 1,
        "time": "2020-01-01T00:00:00.000000Z",
        "actor": "intruder",
        "op": "get",
        "path": "app/s1",
        "version": None,
        "outcome": "ok",
        "prev": records[index - 1].hash if index else GENESIS,
        "hash": "0" * 64,
    }
    content.insert(index, json.dumps(forged).encode() + b"\n")
    rewrite(log_file, content)
    report = verify(log_file)
    assert (report.ok, report.first_bad_line) == (False, index + 1)
    assert "hash does not match" in report.reason


@pytest.mark.parametrize("index", [0, 3])
async def test_a_forged_line_with_a_valid_hash_breaks_the_next_link(
    log_file: Path, index: int
) -> None:
    records = await write_log(log_file)
    content = lines(log_file)
    forged = {
        "seq": index + 1,
        "time": "2020-01-01T00:00:00.000000Z",
        "actor": "intruder",
        "op": "get",
        "path": "app/s1",
        "version": None,
        "outcome": "ok",
        "prev": records[index - 1].hash if index else GENESIS,
    }
    content.insert(index, resign(forged))
    rewrite(log_file, content)
    report = verify(log_file)
    assert (report.ok, report.first_bad_line) == (False, index + 2)


@pytest.mark.parametrize("cut", [1, 2, 20])
async def test_a_torn_last_line_is_detected(log_file: Path, cut: int) -> None:
    await write_log(log_file)
    data = read(log_file)
    write(log_file, data[:-cut])
    report = verify(log_file)
    assert (report.ok, report.first_bad_line, report.records) == (False, LINES, LINES - 1)
    assert "cut short" in report.reason


@pytest.mark.parametrize(
    "line",
    [b"\n", b"not json\n", b"[1, 2]\n", b'{"seq": 1}\n', b"\xff\xfe\n"],
    ids=["blank", "text", "array", "partial", "binary"],
)
async def test_a_line_that_is_not_a_record_is_detected(log_file: Path, line: bytes) -> None:
    await write_log(log_file)
    content = lines(log_file)
    content.insert(2, line)
    rewrite(log_file, content)
    report = verify(log_file)
    assert (report.ok, report.first_bad_line) == (False, 3)
    assert "not a record" in report.reason


async def test_an_extra_field_is_detected(log_file: Path) -> None:
    await write_log(log_file)
    content = lines(log_file)
    record = json.loads(content[1])
    record["value"] = "hunter2"
    content[1] = json.dumps(record).encode() + b"\n"
    rewrite(log_file, content)
    assert verify(log_file).first_bad_line == 2


async def test_reopening_after_a_torn_last_line_refuses_and_keeps_the_file(
    log_file: Path,
) -> None:
    await write_log(log_file)
    write(log_file, read(log_file)[:-5])
    before = read(log_file)
    log = AuditLog(log_file)
    with pytest.raises(AuditLogCorrupt, match=r"cut short.*verify") as caught:
        await log.record("a", "get", "p", None, "ok")
    assert isinstance(caught.value, StoreCorrupt)
    assert read(log_file) == before


async def test_reopening_after_an_altered_last_line_refuses(log_file: Path) -> None:
    await write_log(log_file)
    content = lines(log_file)
    content[-1] = content[-1].replace(b'"ok"', b'"no"')
    rewrite(log_file, content)
    with pytest.raises(AuditLogCorrupt, match=r"last line.*hash does not match"):
        await AuditLog(log_file).open()


async def test_reopening_finds_a_long_last_line(log_file: Path) -> None:
    async with AuditLog(log_file) as log:
        await log.record("a" * 10_000, "get", "p", None, "ok")
        last = await log.record("b" * 9_000, "get", "p", None, "ok")
    async with AuditLog(log_file) as log:
        assert log.head == (2, last.hash)


# -- concurrency and durability ----------------------------------------------------------


async def test_concurrent_appends_keep_a_valid_chain(log_file: Path) -> None:
    async with AuditLog(log_file) as log:
        records = await asyncio.gather(
            *(log.record(f"task-{n}", "get", f"p/{n}", n, "ok") for n in range(300))
        )
    assert sorted(r.seq for r in records) == list(range(1, 301))
    assert verify(log_file) == AuditReport(ok=True, records=300)
    on_disk = {json.loads(line)["actor"] for line in lines(log_file)}
    assert on_disk == {f"task-{n}" for n in range(300)}


async def test_a_second_log_on_the_same_file_is_refused(log_file: Path) -> None:
    async with AuditLog(log_file) as log:
        await log.record("a", "get", "p", None, "ok")
        with pytest.raises(SecretsUnavailable, match="in use"):
            await AuditLog(log_file).open()
    async with AuditLog(log_file) as again:
        await again.record("a", "get", "p", None, "ok")
    assert verify(log_file).records == 2


async def test_close_is_final(log_file: Path) -> None:
    log = AuditLog(log_file)
    await log.record("a", "get", "p", None, "ok")
    await log.close()
    await log.close()
    with pytest.raises(SecretsUnavailable, match="closed"):
        await log.record("a", "get", "p", None, "ok")


def count_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


async def test_fsyncs_are_batched_by_the_interval(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AuditLog(log_file, fsync_interval=60.0) as log:
        calls = count_fsyncs(monkeypatch)
        for n in range(50):
            await log.record("a", "get", f"p{n}", None, "ok")
        assert len(calls) == 1  # the first write; the others wait for the interval
    assert len(calls) == 2  # and close
    assert verify(log_file).records == 50


async def test_a_pending_fsync_happens_within_the_interval(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AuditLog(log_file, fsync_interval=0.05) as log:
        calls = count_fsyncs(monkeypatch)
        await log.record("a", "get", "p", None, "ok")
        await log.record("a", "get", "p", None, "ok")
        assert len(calls) == 1
        for _ in range(200):  # the fsync is due 0.05 s after the first one
            if len(calls) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(calls) == 2
    assert verify(log_file).records == 2


async def test_interval_zero_fsyncs_every_write(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AuditLog(log_file, fsync_interval=0) as log:
        calls = count_fsyncs(monkeypatch)
        for _ in range(5):
            await log.record("a", "get", "p", None, "ok")
        assert len(calls) == 5


async def test_a_failed_write_stops_the_log(
    log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with AuditLog(log_file) as log:
        await log.record("a", "get", "p", None, "ok")

        def full(fd: int, data: object) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", full)
        with pytest.raises(SecretsUnavailable, match="No space left"):
            await log.record("a", "get", "p", None, "ok")
        monkeypatch.undo()
        with pytest.raises(SecretsUnavailable, match="takes no more records"):
            await log.record("a", "get", "p", None, "ok")
    assert verify(log_file) == AuditReport(ok=True, records=1)


# -- the command line ---------------------------------------------------------------------


async def test_the_cli_exit_statuses(
    log_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await write_log(log_file)
    assert main(["verify", str(log_file)]) == 0
    assert f"ok, {LINES} records" in capsys.readouterr().out

    content = lines(log_file)
    del content[2]
    rewrite(log_file, content)
    assert main(["verify", str(log_file)]) == 1
    assert "BROKEN at line 3" in capsys.readouterr().out

    assert main(["verify", str(tmp_path / "missing.log")]) == 2
    assert "cannot read" in capsys.readouterr().err

    with pytest.raises(SystemExit) as usage:
        main([])
    assert usage.value.code == 2


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aria_actors.services.security.audit", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_module_runs_as_a_program(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    asyncio.run(write_log(path))
    ok = run_cli("verify", str(path))
    assert (ok.returncode, f"ok, {LINES} records" in ok.stdout) == (0, True)
    write(path, read(path)[:-3])
    torn = run_cli("verify", str(path))
    assert (torn.returncode, f"BROKEN at line {LINES}" in torn.stdout) == (1, True)
    assert run_cli("verify", str(tmp_path)).returncode == 2  # a directory: unreadable
