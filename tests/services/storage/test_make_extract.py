"""make and extract: byte-compatible with casync both ways, seeds, and failure paths."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aria_actors.services.storage import chunks
from aria_actors.services.storage.chunker import ChunkerParams
from aria_actors.services.storage.errors import (
    ChunkMissing,
    CorruptChunk,
    InvalidIndex,
    StorageError,
)
from aria_actors.services.storage.extract import Seed, extract
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.index import Index
from aria_actors.services.storage.maintenance import verify_index, verify_store
from aria_actors.services.storage.make import make
from aria_actors.services.storage.stores.local import LocalStore

from .casync import run_casync

pytestmark = pytest.mark.integration

SMALL = ChunkerParams(1024, 4096, 16384)


def mixed(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    block = rng.randbytes(5000)
    out = bytearray()
    while len(out) < size:
        kind = rng.randrange(4)
        n = rng.randint(1, 60_000)
        if kind == 0:
            out += rng.randbytes(n)
        elif kind == 1:
            out += block * (n // 5000 + 1)
        elif kind == 2:
            out += b"the quick brown fox jumps over the lazy dog. " * (n // 45 + 1)
        else:
            out += bytes(n)
    return bytes(out[:size])


EDGE_INPUTS = {
    "empty": b"",
    "one-byte": b"x",
    "exactly-min": random.Random(2).randbytes(16 * 1024),
    "min-plus-one": random.Random(3).randbytes(16 * 1024 + 1),
    "zeros": bytes(1_000_000),
    "identical-blocks": random.Random(4).randbytes(65536) * 20,
    "mixed": mixed(1_500_000),
}


def _casync_make(casync: str, tmp: Path, blob: Path, *opts: str) -> tuple[Path, Path]:
    store = tmp / "casync-store"
    index = tmp / "casync.caibx"
    run_casync(casync, "make", f"--store={store}", *opts, index, blob)
    return index, store


@pytest.mark.parametrize("name", list(EDGE_INPUTS))
def test_same_index_as_casync_and_both_extract_each_other(
    tmp_path: Path, casync: str, name: str
) -> None:
    data = EDGE_INPUTS[name]
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    theirs, their_store = _casync_make(casync, tmp_path, blob)
    mine, stats = make(blob, LocalStore(tmp_path / "aria-store"))
    mine.write(tmp_path / "aria.caibx")
    assert (tmp_path / "aria.caibx").read_bytes() == theirs.read_bytes()
    assert stats.bytes_in == len(data)
    # Aria extracts what casync made, from casync's store (none for an empty blob)
    their_store.mkdir(exist_ok=True)
    extract(theirs, tmp_path / "out-aria", LocalStore(their_store, writable=False))
    assert (tmp_path / "out-aria").read_bytes() == data
    # casync extracts what Aria made, from Aria's store
    run_casync(
        casync,
        "extract",
        f"--store={tmp_path / 'aria-store'}",
        tmp_path / "aria.caibx",
        tmp_path / "out-casync",
    )
    assert (tmp_path / "out-casync").read_bytes() == data


@pytest.mark.parametrize(
    ("spec", "params"),
    [
        ("1024:4096:16384", ChunkerParams(1024, 4096, 16384)),
        ("8192", ChunkerParams.from_avg(8192)),
        ("65536:65536:65536", ChunkerParams(65536, 65536, 65536)),
        ("100000:500000:2000000", ChunkerParams(100000, 500000, 2000000)),
    ],
)
def test_chunk_size_settings_match_casync(
    tmp_path: Path, casync: str, spec: str, params: ChunkerParams
) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(mixed(3_000_000, seed=5))
    theirs, _ = _casync_make(casync, tmp_path, blob, f"--chunk-size={spec}")
    mine, _ = make(blob, LocalStore(tmp_path / "s"), params=params)
    assert mine.to_bytes() == theirs.read_bytes()


def test_sha256_indexes_match_and_extract(tmp_path: Path, casync: str) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(mixed(800_000, seed=6))
    theirs, their_store = _casync_make(casync, tmp_path, blob, "--digest=sha256")
    mine, _ = make(blob, LocalStore(tmp_path / "s"), digest="sha256")
    assert mine.digest == "sha256"
    assert mine.to_bytes() == theirs.read_bytes()
    extract(theirs, tmp_path / "out", [LocalStore(their_store)])
    assert (tmp_path / "out").read_bytes() == blob.read_bytes()


@pytest.mark.parametrize("compression", ["gzip", "xz", "zstd"])
def test_reads_casync_stores_of_every_compression(
    tmp_path: Path, casync: str, compression: str
) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(mixed(600_000, seed=7))
    theirs, their_store = _casync_make(casync, tmp_path, blob, f"--compression={compression}")
    some = next(p for p in their_store.rglob("*.cacnk"))
    assert chunks.detect(some.read_bytes()) == compression
    extract(theirs, tmp_path / "out", LocalStore(their_store))
    assert (tmp_path / "out").read_bytes() == blob.read_bytes()
    assert verify_store(LocalStore(their_store)).ok


def test_seed_and_in_place_update(tmp_path: Path) -> None:
    old = mixed(2_000_000, seed=8)
    new = bytearray(old)
    new[500_000:500_010] = b"0123456789"
    new[1_200_000:1_200_000] = b"inserted" * 1000
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    store = LocalStore(tmp_path / "s")
    old_index, _ = make(tmp_path / "old", store, params=SMALL)
    new_index, _ = make(tmp_path / "new", store, params=SMALL)
    only_new = LocalStore(tmp_path / "only-new")
    for chunk in new_index:  # a store with just the chunks the old version lacks
        if chunk.id not in old_index.unique_ids():
            only_new.put(chunk.id, store.get(chunk.id))
    # a plain seed file (chunked here) and a seed with its index
    for seed in (tmp_path / "old", Seed(tmp_path / "old", old_index)):
        out = tmp_path / "out"
        out.unlink(missing_ok=True)
        stats = extract(new_index, out, only_new, seeds=[seed])
        assert out.read_bytes() == new
        assert stats.from_seed > 0
        assert stats.from_store < stats.unique_chunks
    # in place: the old target seeds the new one
    target = tmp_path / "target"
    target.write_bytes(old)
    os.chmod(target, 0o600)
    stats = extract(new_index, target, only_new, in_place=True)
    assert target.read_bytes() == new
    assert stats.from_seed > 0
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    # without a seed and without the old chunks, the missing chunk is named
    with pytest.raises(ChunkMissing) as info:
        extract(new_index, tmp_path / "x", only_new)
    assert info.value.chunk_id in {str(c.id) for c in old_index}


def test_changed_seed_costs_a_fetch_not_a_wrong_byte(tmp_path: Path) -> None:
    data = mixed(500_000, seed=9)
    (tmp_path / "seed").write_bytes(data)
    store = LocalStore(tmp_path / "s")
    index, _ = make(tmp_path / "seed", store, params=SMALL)
    seed_index = Index.parse(index.to_bytes())
    changed = bytearray(data)
    changed[1000:1100] = bytes(100)
    (tmp_path / "seed").write_bytes(changed)
    stats = extract(index, tmp_path / "out", store, seeds=[Seed(tmp_path / "seed", seed_index)])
    assert (tmp_path / "out").read_bytes() == data
    assert stats.from_store >= 1


def test_duplicates_and_zeros_are_fetched_once_and_sparse(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(20_000) * 30 + bytes(3_000_000)
    (tmp_path / "blob").write_bytes(data)
    store = LocalStore(tmp_path / "s")
    index, mstats = make(tmp_path / "blob", store, params=SMALL)
    assert mstats.unique_chunks < mstats.chunks
    stats = extract(index, tmp_path / "out", store)
    assert (tmp_path / "out").read_bytes() == data
    assert stats.from_store == stats.unique_chunks == len(index.unique_ids())
    assert stats.zero_chunks >= 1
    assert stats.bytes_written < len(data)
    # sparse: the zeros take (almost) no blocks on file systems that support holes
    st = (tmp_path / "out").stat()
    assert st.st_blocks * 512 <= len(data)


def _corrupt_one(store: LocalStore, index: Index) -> ChunkId:
    victim = index[len(index) // 2].id
    path = store.path(victim)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    path.write_bytes(bytes(raw))
    return victim


def test_corrupt_chunk_is_named_and_the_old_target_survives(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(mixed(400_000, seed=10))
    store = LocalStore(tmp_path / "s")
    index, _ = make(tmp_path / "blob", store, params=SMALL)
    victim = _corrupt_one(store, index)
    target = tmp_path / "target"
    target.write_bytes(b"the old content")
    with pytest.raises(CorruptChunk) as info:
        extract(index, target, store, in_place=False)
    assert info.value.chunk_id == str(victim)
    assert str(victim) in str(info.value)
    assert target.read_bytes() == b"the old content"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # verify names it; repair removes it; make puts it back
    report = verify_index(index, store)
    assert [c for c, _ in report.corrupt] == [victim]
    report = verify_store(store, repair=True)
    assert report.removed == [victim]
    assert verify_index(index, store).missing == [victim]
    make(tmp_path / "blob", store, params=SMALL)
    assert verify_index(index, store).ok


def test_a_good_copy_in_a_later_store_wins_over_a_corrupt_one(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(mixed(300_000, seed=11))
    first, second = LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")
    index, _ = make(tmp_path / "blob", first, params=SMALL)
    make(tmp_path / "blob", second, params=SMALL)
    _corrupt_one(first, index)
    extract(index, tmp_path / "out", [first, second])
    assert (tmp_path / "out").read_bytes() == (tmp_path / "blob").read_bytes()


def test_missing_chunk_and_bad_index_are_named(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(mixed(300_000, seed=12))
    store = LocalStore(tmp_path / "s")
    index, _ = make(tmp_path / "blob", store, params=SMALL)
    gone = index[3].id
    store.remove(gone)
    with pytest.raises(ChunkMissing, match=str(gone)):
        extract(index, tmp_path / "out", store)
    assert not (tmp_path / "out").exists()
    index.write(tmp_path / "i.caibx")
    raw = (tmp_path / "i.caibx").read_bytes()
    (tmp_path / "t.caibx").write_bytes(raw[:-13])
    with pytest.raises(InvalidIndex, match=r"t\.caibx"):
        extract(tmp_path / "t.caibx", tmp_path / "out", store)
    (tmp_path / "g.caibx").write_bytes(os.urandom(500))
    with pytest.raises(InvalidIndex):
        extract(tmp_path / "g.caibx", tmp_path / "out", store)
    assert not (tmp_path / "out").exists()


def test_chunk_decompressing_past_the_index_size_is_refused(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(b"a" * 5000)
    store = LocalStore(tmp_path / "s")
    index, _ = make(tmp_path / "blob", store, params=SMALL)
    cid = index[0].id
    store.remove(cid)
    store.put(cid, chunks.compress(b"a" * 10_000_000))  # a bomb under a real id
    with pytest.raises(CorruptChunk, match="claims 10000000 bytes, over 5000"):
        extract(index, tmp_path / "out", store)
    # the same without a size in the frame (as casync streams them): stopped while reading
    import zstandard

    stream = zstandard.ZstdCompressor().compressobj()
    store.remove(cid)
    store.put(cid, stream.compress(b"a" * 10_000_000) + stream.flush())
    with pytest.raises(CorruptChunk, match="more than 5000 bytes"):
        extract(index, tmp_path / "out", store)
    assert not (tmp_path / "out").exists()


def test_concurrent_makes_into_one_store(tmp_path: Path) -> None:
    blobs = []
    for i in range(4):
        p = tmp_path / f"blob{i}"
        p.write_bytes(mixed(700_000, seed=20 + i % 2))  # pairs share all chunks
        blobs.append(p)
    store = LocalStore(tmp_path / "s")
    results: dict[int, Index] = {}

    def run(i: int) -> None:
        results[i], _ = make(blobs[i], store, params=SMALL)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # and two processes at once, into the same store
    code = (
        "import sys; from aria_actors.services.storage.make import make;"
        "from aria_actors.services.storage.chunker import ChunkerParams;"
        "from aria_actors.services.storage.stores.local import LocalStore;"
        "make(sys.argv[1], LocalStore(sys.argv[2]), params=ChunkerParams(1024, 4096, 16384))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(b), str(tmp_path / "s")])
        for b in blobs[:2]
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert verify_store(store).ok
    for i, index in results.items():
        assert verify_index(index, store).ok
        extract(index, tmp_path / f"out{i}", store)
        assert (tmp_path / f"out{i}").read_bytes() == blobs[i].read_bytes()
    assert not list((tmp_path / "s").rglob(".*.tmp"))


def test_interrupted_write_leaves_no_partial_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "s")
    data = os.urandom(50_000)
    cid = ChunkId.of(data)
    real_write = os.write

    def half_then_fail(fd: int, buf: bytes | memoryview) -> int:
        real_write(fd, bytes(buf)[: len(buf) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(StorageError, match="No space left"):
        store.put(cid, chunks.compress(data))
    monkeypatch.undo()
    assert not store.has(cid)
    assert list(store.ids()) == []
    assert not [p for p in (tmp_path / "s").rglob("*") if p.is_file()]


def test_killed_make_leaves_only_temporaries(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(os.urandom(40_000_000))
    code = (
        "import sys; from aria_actors.services.storage.make import make;"
        "from aria_actors.services.storage.stores.local import LocalStore;"
        "from aria_actors.services.storage.chunker import ChunkerParams;"
        "make(sys.argv[1], LocalStore(sys.argv[2]), level=19,"
        " params=ChunkerParams(1024, 4096, 16384))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "blob"), str(tmp_path / "s")]
    )
    store_dir = tmp_path / "s"
    # wait until it has written something, then kill it mid-run
    for _ in range(2000):
        if store_dir.exists() and any(store_dir.rglob("*.cacnk")):
            break
        if proc.poll() is not None:
            break
        threading.Event().wait(0.01)
    proc.kill()
    proc.wait()
    store = LocalStore(store_dir)
    report = verify_store(store)
    assert report.ok
    assert report.checked == len(list(store.ids()))
    for leftover in store_dir.rglob(".*.tmp"):
        assert not leftover.name.endswith(".cacnk")
    store.sweep_temporaries(older_than=0)
    assert not list(store_dir.rglob(".*.tmp"))


def test_make_from_a_stream_equals_make_from_the_file(tmp_path: Path) -> None:
    data = mixed(900_000, seed=13)
    (tmp_path / "blob").write_bytes(data)
    from_file, _ = make(tmp_path / "blob", None, params=SMALL)
    blocks = [data[i : i + 77_777] for i in range(0, len(data), 77_777)]
    from_blocks, _ = make(blocks, None, params=SMALL)
    with open(tmp_path / "blob", "rb") as f:
        from_fileobj, _ = make(f, None, params=SMALL)
    assert from_file == from_blocks == from_fileobj
