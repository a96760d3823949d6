"""Index files: casync's .caibx/.caidx read and written byte for byte; bad ones refused."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aria_actors.services.storage.errors import InvalidIndex
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.index import (
    FLAG_ARIA_BLAKE3,
    FLAG_SHA512_256,
    HEADER_SIZE,
    Index,
    digest_of_flags,
    flags_for_digest,
)

from .casync import run_casync

pytestmark = pytest.mark.integration


def _sample(n: int = 5) -> Index:
    index = Index(min_size=4, avg_size=16, max_size=64)
    for i in range(n):
        index.append(10 + i, ChunkId.of(bytes([i])))
    return index


def test_casync_blob_index_round_trips(tmp_path: Path, casync: str) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(700_000))
    run_casync(casync, "make", f"--store={tmp_path / 'store'}", tmp_path / "b.caibx", blob)
    raw = (tmp_path / "b.caibx").read_bytes()
    index = Index.read(tmp_path / "b.caibx")
    assert index.blob_size == 700_000
    assert index.digest == "sha512-256"
    assert (index.min_size, index.avg_size, index.max_size) == (16384, 65536, 262144)
    assert index.to_bytes() == raw
    data = blob.read_bytes()
    for chunk in index:  # the ids are SHA512/256 of the chunk bytes
        assert ChunkId.of(data[chunk.start : chunk.end]) == chunk.id


def test_casync_sha256_and_archive_indexes(tmp_path: Path, casync: str) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(os.urandom(100_000))
    run_casync(
        casync,
        "make",
        "--digest=sha256",
        f"--store={tmp_path / 's'}",
        tmp_path / "d.caidx",
        tmp_path / "d",
    )
    index = Index.read(tmp_path / "d.caidx")
    assert index.digest == "sha256"
    assert index.feature_flags & FLAG_SHA512_256 == 0
    assert index.to_bytes() == (tmp_path / "d.caidx").read_bytes()


def test_written_index_is_read_by_casync(tmp_path: Path, casync: str) -> None:
    # an index of a blob of one chunk we store ourselves: casync lists the same digest
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(1000))
    run_casync(casync, "make", f"--store={tmp_path / 's'}", tmp_path / "c.caibx", blob)
    theirs = Index.read(tmp_path / "c.caibx")
    mine = Index(min_size=theirs.min_size, avg_size=theirs.avg_size, max_size=theirs.max_size)
    for chunk in theirs:
        mine.append(chunk.size, chunk.id)
    mine.write(tmp_path / "mine.caibx")
    assert (tmp_path / "mine.caibx").read_bytes() == (tmp_path / "c.caibx").read_bytes()
    run_casync(
        casync, "extract", f"--store={tmp_path / 's'}", tmp_path / "mine.caibx", tmp_path / "out"
    )
    assert (tmp_path / "out").read_bytes() == blob.read_bytes()


def test_blake3_index_is_refused_by_casync(tmp_path: Path, casync: str) -> None:
    index = _sample()
    index.feature_flags = flags_for_digest(index.feature_flags, "blake3")
    assert index.feature_flags & FLAG_ARIA_BLAKE3
    index.write(tmp_path / "b3.caibx")
    assert Index.read(tmp_path / "b3.caibx").digest == "blake3"
    import subprocess

    done = subprocess.run(
        [casync, "extract", f"--store={tmp_path}", str(tmp_path / "b3.caibx"), str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert not (tmp_path / "o").exists()


def test_table_access() -> None:
    index = _sample()
    assert len(index) == 5
    assert (index[0].start, index[0].size) == (0, 10)
    assert index[-1].end == index.blob_size == sum(range(10, 15))
    assert [c.start for c in index] == [c.start for c in index[:]]
    assert [index.locate(0), index.locate(10), index.locate(index.blob_size - 1)] == [0, 1, 4]
    with pytest.raises(IndexError):
        index.locate(index.blob_size)
    assert Index.parse(index.to_bytes()) == index
    assert digest_of_flags(0) == "sha256"


def test_empty_index_round_trips() -> None:
    empty = Index()
    assert Index.parse(empty.to_bytes()).blob_size == 0


def _error(data: bytes) -> InvalidIndex:
    with pytest.raises(InvalidIndex) as info:
        Index.parse(data, name="x.caibx")
    assert "x.caibx" in str(info.value)
    return info.value


def test_truncated_at_every_length_is_refused() -> None:
    raw = _sample(3).to_bytes()
    for n in range(len(raw)):
        _error(raw[:n])


@pytest.mark.parametrize(
    ("offset", "value", "words"),
    [
        (0, 47, "header size"),
        (8, 1, "not a casync index"),
        (16, 1 << 40, "unknown feature flags"),
        (24, 0, "chunk size min"),
        (32, 1, "not min <= avg <= max"),
        (40, (128 << 20) + 1, "chunk size max"),
        (HEADER_SIZE, 5, "no chunk table"),
    ],
)
def test_bad_header_fields_are_named(offset: int, value: int, words: str) -> None:
    raw = bytearray(_sample().to_bytes())
    struct.pack_into("<Q", raw, offset, value)
    err = _error(bytes(raw))
    assert words in str(err)
    assert err.offset is not None


def test_bad_table_items_are_named() -> None:
    raw = bytearray(_sample().to_bytes())
    item0 = HEADER_SIZE + 16
    struct.pack_into("<Q", raw, item0 + 40, 5)  # chunk 1 ends before chunk 0
    assert "chunk 1 ends at 5" in str(_error(bytes(raw)))
    raw = bytearray(_sample().to_bytes())
    struct.pack_into("<Q", raw, item0, 65)  # chunk 0 is bigger than max
    assert "over the index's maximum" in str(_error(bytes(raw)))
    raw = bytearray(_sample().to_bytes())
    raw[-1] ^= 0xFF
    assert "marker" in str(_error(bytes(raw)))
    raw = bytearray(_sample().to_bytes())
    struct.pack_into("<Q", raw, len(raw) - 16, 999)
    assert "table tail says" in str(_error(bytes(raw)))
    assert "whole number" in str(_error(_sample().to_bytes() + b"\0" * 7))


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidIndex, match=r"nope\.caibx"):
        Index.read(tmp_path / "nope.caibx")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_indexes_never_crash(data: st.DataObject) -> None:
    raw = bytearray(_sample(4).to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        index = Index.parse(bytes(raw[:cut]))
    except InvalidIndex:
        return
    # whatever parses is self-consistent
    assert Index.parse(index.to_bytes()) == index
    ends = [c.end for c in index]
    assert ends == sorted(set(ends))
