"""untar with seeds: chunks of a .caidx taken from directories (and .catar files) that
share them, as ``casync extract --seed=DIR``; never a wrong byte, casync agrees."""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aria_actors.services.storage import archive
from aria_actors.services.storage.archive import UntarStats, make_archive, tar, untar
from aria_actors.services.storage.chunker import ChunkerParams
from aria_actors.services.storage.cli import main
from aria_actors.services.storage.errors import ChunkMissing, StorageError
from aria_actors.services.storage.index import Index
from aria_actors.services.storage.stores.local import LocalStore

from .casync import run_casync
from .test_catar import WHERE_CASYNC_CANNOT_EXTRACT, build_rich_tree, snapshot

pytestmark = pytest.mark.integration

#: casync's ``--chunk-size=4096``: small chunks, so a change costs few of them
PARAMS = ChunkerParams.from_avg(4096)
DATA_FILES = 6


def build_v1(root: Path) -> None:
    """The rich tree of the catar tests plus a few hundred KiB of data files."""
    build_rich_tree(root, long_name=WHERE_CASYNC_CANNOT_EXTRACT)
    rng = random.Random(11)
    (root / "data").mkdir()
    for i in range(DATA_FILES):
        (root / "data" / f"f{i}").write_bytes(rng.randbytes(150_000 + 10_000 * i))
        os.utime(root / "data" / f"f{i}", ns=(1_700_000_000_000_000_000 + i,) * 2)
    os.utime(root / "data", ns=(1_700_000_001_000_000_000,) * 2)
    os.utime(root, ns=(1_234_567_890_999_999_999,) * 2)


def build_v2(root: Path) -> None:
    """v1 with a few files changed, one added and one removed."""
    build_v1(root)
    big = root / "data" / "f2"
    data = bytearray(big.read_bytes())
    data[80_000:80_100] = b"v2" * 50  # in place, the same length
    big.write_bytes(bytes(data))
    (root / "small").write_bytes(b"hello again\n")  # keeps its xattrs
    (root / "many" / "f123").write_bytes(b"one hundred and twenty-three")
    (root / "data" / "f4").unlink()
    (root / "data" / "new").write_bytes(random.Random(12).randbytes(40_000))


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("versions")
    build_v1(base / "v1")
    build_v2(base / "v2")
    return base / "v1", base / "v2"


@pytest.fixture
def scenario(versions: tuple[Path, Path], tmp_path: Path) -> tuple[Index, Index, LocalStore]:
    """v1's and v2's indexes, and a store holding only the chunks v2 adds to v1."""
    v1, v2 = versions
    index1, _ = make_archive(v1, None, params=PARAMS)
    store = LocalStore(tmp_path / "store")
    index2, stats = make_archive(v2, store, params=PARAMS)
    old = {c.id for c in index1}
    for cid in {c.id for c in index2} & old:
        store.remove(cid)
    assert 0 < len(set(store.ids())) < stats.unique_chunks // 4
    return index1, index2, store


def new_chunks(index1: Index, index2: Index) -> int:
    """Chunks of index2 (as listed, repeats counted) that index1 does not have."""
    old = {c.id for c in index1}
    return sum(1 for c in index2 if c.id not in old)


def no_leftovers(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


def test_v1_as_seed_gives_exactly_v2(
    versions: tuple[Path, Path], scenario: tuple[Index, Index, LocalStore], tmp_path: Path
) -> None:
    v1, v2 = versions
    index1, index2, store = scenario
    stats = UntarStats()
    untar(index2, tmp_path / "out", store, seeds=[v1], stats=stats)
    assert snapshot(tmp_path / "out") == snapshot(v2)
    assert stats.chunks == len(index2)
    assert stats.from_seed + stats.from_store == len(index2)
    # exactly the chunks v1 lacks come from the store, all others from the seed
    assert stats.from_store == new_chunks(index1, index2)
    assert stats.from_seed > 10 * stats.from_store
    assert stats.bytes_from_seed + stats.bytes_from_store == index2.blob_size
    assert stats.seeds == 1
    assert stats.seed_bytes == index1.blob_size
    assert stats.seed_chunks == len({c.id for c in index2} & {c.id for c in index1})
    assert stats.stale_seed_chunks == 0
    assert stats.skipped_seeds == []
    no_leftovers(tmp_path)


def test_updating_in_place_seeds_from_the_old_tree(
    versions: tuple[Path, Path], scenario: tuple[Index, Index, LocalStore], tmp_path: Path
) -> None:
    """The default (casync's --seed-output=yes): the tree being replaced is the seed."""
    v1, v2 = versions
    index1, index2, store = scenario
    target = tmp_path / "target"
    untar(index1, target, LocalStore(tmp_path / "v1-store"), seeds=[v1])  # v1, from v1
    assert snapshot(target) == snapshot(v1)
    stats = UntarStats()
    untar(index2, target, store, stats=stats)
    assert snapshot(target) == snapshot(v2)
    # an extracted tree encodes as its archive did: only the new chunks are fetched
    assert stats.from_store == new_chunks(index1, index2)
    assert stats.seeds == 1
    no_leftovers(tmp_path)


def test_without_a_seed_a_missing_chunk_is_named_and_the_target_kept(
    versions: tuple[Path, Path], scenario: tuple[Index, Index, LocalStore], tmp_path: Path
) -> None:
    v1, _ = versions
    _, index2, store = scenario
    target = tmp_path / "target"
    shutil.copytree(v1 / "data", target, copy_function=shutil.copy2)
    before = snapshot(target)
    held = set(store.ids())
    first_missing = next(c.id for c in index2 if c.id not in held)
    stats = UntarStats()
    with pytest.raises(ChunkMissing, match=str(first_missing)) as info:
        untar(index2, target, store, seed_output=False, stats=stats)
    assert info.value.chunk_id == str(first_missing)
    assert snapshot(target) == before
    assert stats.seeds == 0
    assert stats.from_seed == 0
    # the target as a seed holds only part of v1: still not enough
    with pytest.raises(ChunkMissing):
        untar(index2, target, store)
    assert snapshot(target) == before
    no_leftovers(tmp_path)


def _flip(path: Path) -> None:
    """Every byte of ``path`` changed, its length kept."""
    data = path.read_bytes()
    path.write_bytes(bytes(b ^ 0x5A for b in data))


def test_a_seed_that_changed_after_being_chunked_costs_a_store_read(
    versions: tuple[Path, Path],
    scenario: tuple[Index, Index, LocalStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A .catar seed is read where it is: rewritten between chunking and reading, each
    chunk fails its re-check and comes from the stores (or is named missing)."""
    v1, v2 = versions
    index1, index2, store = scenario
    seed = tmp_path / "v1.catar"
    tar(v1, seed)
    add_file = archive._SeedChunks.add_file

    def add_then_change(self: archive._SeedChunks, path: Path) -> int:
        scanned = add_file(self, path)
        _flip(path)
        return scanned

    # unchanged, the .catar serves as well as the tree
    stats = UntarStats()
    untar(index2, tmp_path / "out", store, seeds=[seed], stats=stats)
    assert snapshot(tmp_path / "out") == snapshot(v2)
    assert stats.from_store == new_chunks(index1, index2)

    monkeypatch.setattr(archive._SeedChunks, "add_file", add_then_change)
    # with only the new chunks in the store: named missing, the old target kept
    tar(v1, seed)
    before = snapshot(tmp_path / "out")
    with pytest.raises(ChunkMissing, match="no longer match"):
        untar(index2, tmp_path / "out", store, seeds=[seed], seed_output=False)
    assert snapshot(tmp_path / "out") == before
    # with every chunk in the stores: v2 exactly, every seeded chunk read from a store
    full = LocalStore(tmp_path / "full")
    make_archive(v2, full, params=PARAMS)
    tar(v1, seed)
    stats = UntarStats()
    untar(index2, tmp_path / "out2", [store, full], seeds=[seed], stats=stats)
    assert snapshot(tmp_path / "out2") == snapshot(v2)
    assert stats.seed_chunks > 0
    assert stats.from_seed == 0
    assert stats.from_store == len(index2)
    assert stats.stale_seed_chunks == len(index2) - new_chunks(index1, index2)
    no_leftovers(tmp_path)


def test_spilled_seed_chunks_are_checked_again_when_read(
    versions: tuple[Path, Path],
    scenario: tuple[Index, Index, LocalStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A directory seed's chunks are copied aside while it is chunked: later changes to
    the tree do not matter, and damage to the copies costs store reads."""
    v1, v2 = versions
    index1, index2, store = scenario
    seed = tmp_path / "seed"
    build_v1(seed)
    add_tree = archive._SeedChunks.add_tree

    def add_then_change_tree(self: archive._SeedChunks, path: Path) -> int:
        scanned = add_tree(self, path)
        for name in ("big", "data/f0", "data/f3"):
            _flip(path / name)
        return scanned

    monkeypatch.setattr(archive._SeedChunks, "add_tree", add_then_change_tree)
    stats = UntarStats()
    untar(index2, tmp_path / "out", store, seeds=[seed], stats=stats)
    assert snapshot(tmp_path / "out") == snapshot(v2)
    assert stats.from_store == new_chunks(index1, index2)

    def add_then_damage_copies(self: archive._SeedChunks, path: Path) -> int:
        scanned = add_tree(self, path)
        fd = self._spill_fd()
        size = os.fstat(fd).st_size
        os.pwrite(fd, bytes(size), 0)
        return scanned

    monkeypatch.setattr(archive._SeedChunks, "add_tree", add_then_damage_copies)
    full = LocalStore(tmp_path / "full")
    make_archive(v2, full, params=PARAMS)
    stats = UntarStats()
    untar(index2, tmp_path / "out2", [store, full], seeds=[v1], stats=stats)
    assert snapshot(tmp_path / "out2") == snapshot(v2)
    assert stats.from_seed == 0
    assert stats.stale_seed_chunks == len(index2) - new_chunks(index1, index2)
    no_leftovers(tmp_path)


def test_a_seed_that_changes_while_being_chunked(
    versions: tuple[Path, Path],
    scenario: tuple[Index, Index, LocalStore],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bytes read from files being rewritten hash to what they are: what no longer
    matches the index is simply not found in the seed."""
    _, v2 = versions
    index1, index2, store = scenario
    seed = tmp_path / "seed"
    build_v1(seed)
    encode = archive.catar.encode

    def encode_and_change(path: Path, flags: int, *, block_size: int) -> Iterator[bytes]:
        # small blocks: the first ends long before data/ (at 370 KB) is read
        blocks = encode(path, flags, block_size=64 * 1024)
        yield next(blocks)
        for i in range(DATA_FILES):
            _flip(seed / "data" / f"f{i}")
        yield from blocks

    full = LocalStore(tmp_path / "full")
    make_archive(v2, full, params=PARAMS)
    monkeypatch.setattr(archive.catar, "encode", encode_and_change)
    stats = UntarStats()
    untar(index2, tmp_path / "out", [store, full], seeds=[seed], stats=stats)
    monkeypatch.undo()
    assert snapshot(tmp_path / "out") == snapshot(v2)
    # what the seed offered is what the changed tree encodes to
    changed, _ = make_archive(seed, None, params=PARAMS)
    assert stats.from_store == new_chunks(changed, index2)
    assert stats.from_store > new_chunks(index1, index2)
    assert stats.from_seed > 0
    assert stats.stale_seed_chunks == 0


def test_seed_failures(
    versions: tuple[Path, Path], scenario: tuple[Index, Index, LocalStore], tmp_path: Path
) -> None:
    """A seed named by the caller must be readable; the old target is only a bonus."""
    _, v2 = versions
    _, index2, store = scenario
    full = LocalStore(tmp_path / "full")
    make_archive(v2, full, params=PARAMS)
    target = tmp_path / "target"
    target.mkdir()
    (target / ".caexclude").write_bytes(b"a/../b\n")  # casync refuses to encode this tree
    with pytest.raises(StorageError, match=r"seed .*target.*bad path component"):
        untar(index2, tmp_path / "out", full, seeds=[target])
    with pytest.raises(StorageError, match=r"seed .*nowhere"):
        untar(index2, tmp_path / "out", full, seeds=[tmp_path / "nowhere"])
    assert not (tmp_path / "out").exists()
    stats = UntarStats()
    untar(index2, target, [store, full], stats=stats)
    assert snapshot(target) == snapshot(v2)
    assert len(stats.skipped_seeds) == 1
    assert "bad path component" in stats.skipped_seeds[0]
    assert stats.seeds == 0
    no_leftovers(tmp_path)


def test_casync_extracts_the_same_tree_with_the_same_seed(
    versions: tuple[Path, Path],
    scenario: tuple[Index, Index, LocalStore],
    tmp_path: Path,
    casync: str,
) -> None:
    """The scenario is casync's: its extract, seeded with v1, needs no other chunk."""
    v1, v2 = versions
    _, index2, store = scenario
    index2.write(tmp_path / "v2.caidx")
    run_casync(casync, "make", "--chunk-size=4096", tmp_path / "c.caidx", v2)
    assert (tmp_path / "c.caidx").read_bytes() == (tmp_path / "v2.caidx").read_bytes()
    run_casync(
        casync,
        "extract",
        f"--store={store.location}",
        f"--seed={v1}",
        tmp_path / "v2.caidx",
        tmp_path / "out-casync",
    )
    untar(tmp_path / "v2.caidx", tmp_path / "out-aria", store, seeds=[v1])
    assert snapshot(tmp_path / "out-aria") == snapshot(tmp_path / "out-casync")


def test_command_line(
    versions: tuple[Path, Path],
    scenario: tuple[Index, Index, LocalStore],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    v1, v2 = versions
    index1, index2, store = scenario
    index2.write(tmp_path / "v2.caidx")

    def aria(*args: str | Path) -> int:
        with pytest.raises(SystemExit) as info:
            main([str(a) for a in args])
        code = info.value.code
        assert isinstance(code, int)
        return code

    out = tmp_path / "out"
    argv = ["untar", "-i", "-s", store.location, "--seed", tmp_path / "nowhere", "--seed", v1]
    assert aria(*argv, tmp_path / "v2.caidx", out) == 1
    assert "nowhere" in capsys.readouterr().err
    argv = ["untar", "-i", "-s", store.location, "--seed", v1, "--print-stats"]
    assert aria(*argv, tmp_path / "v2.caidx", out) == 0
    stats = json.loads(capsys.readouterr().err)
    assert snapshot(out) == snapshot(v2)
    assert stats["from_store"] == new_chunks(index1, index2)
    assert stats["from_seed"] + stats["from_store"] == len(index2)
    # again: seeded by the output alone (casync's default), or not at all
    argv = ["untar", "-i", "-s", store.location, "--print-stats"]
    assert aria(*argv, tmp_path / "v2.caidx", out) == 0
    assert json.loads(capsys.readouterr().err)["from_store"] == 0
    assert aria(*argv, "--seed-output=no", tmp_path / "v2.caidx", out) == 1
    assert "is in none of the stores" in capsys.readouterr().err
    assert aria("untar", "--seed", v1, tmp_path / "x.catar", out) == 1
    assert "--seed needs -i" in capsys.readouterr().err
    assert aria("untar", "-i", "--seed-output=maybe", tmp_path / "v2.caidx", out) == 2
    assert "not a boolean" in capsys.readouterr().err
    assert snapshot(out) == snapshot(v2)
