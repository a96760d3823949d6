"""Directory archives chunked into stores (.caidx): casync both ways, atomic untar."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aria_actors.services.storage import flags as ff
from aria_actors.services.storage.archive import make_archive, tar, untar
from aria_actors.services.storage.chunker import ChunkerParams
from aria_actors.services.storage.errors import ChunkMissing, CorruptChunk, InvalidArchive
from aria_actors.services.storage.index import Index
from aria_actors.services.storage.stores.local import LocalStore

from .casync import run_casync
from .test_catar import WHERE_CASYNC_CANNOT_EXTRACT, build_rich_tree, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive") / "t"
    build_rich_tree(root, long_name=WHERE_CASYNC_CANNOT_EXTRACT)
    big = root / "big.bin"
    big.write_bytes(os.urandom(700_000) + bytes(300_000) + os.urandom(1000) * 300)
    return root


@pytest.mark.parametrize(
    ("casync_args", "digest", "with_"),
    [
        ([], "sha512-256", ()),
        (["--digest=sha256", "--chunk-size=4096"], "sha256", ()),
        (["--with=unix"], "sha512-256", ("unix",)),
    ],
)
def test_caidx_identical_to_casync_and_extracts_both_ways(
    tree: Path,
    tmp_path: Path,
    casync: str,
    casync_args: list[str],
    digest: str,
    with_: tuple[str, ...],
) -> None:
    run_casync(
        casync, "make", f"--store={tmp_path / 'cs'}", *casync_args, tmp_path / "c.caidx", tree
    )
    params = ChunkerParams.from_avg(4096) if "--chunk-size=4096" in casync_args else None
    flags = ff.make_flags(with_=with_, digest=digest)
    mine, stats = make_archive(
        tree, LocalStore(tmp_path / "as"), feature_flags=flags, params=params, digest=digest
    )
    mine.write(tmp_path / "a.caidx")
    assert (tmp_path / "a.caidx").read_bytes() == (tmp_path / "c.caidx").read_bytes()
    assert stats.new_chunks == stats.unique_chunks
    # Aria untars casync's
    untar(tmp_path / "c.caidx", tmp_path / "out-aria", LocalStore(tmp_path / "cs"))
    # casync extracts Aria's
    run_casync(
        casync,
        "extract",
        f"--store={tmp_path / 'as'}",
        tmp_path / "a.caidx",
        tmp_path / "out-casync",
    )
    if not with_:
        assert snapshot(tmp_path / "out-aria") == snapshot(tree)
    assert snapshot(tmp_path / "out-aria") == snapshot(tmp_path / "out-casync")


def test_catar_file_and_replacing_an_existing_tree(tree: Path, tmp_path: Path, casync: str) -> None:
    size = tar(tree, tmp_path / "t.catar")
    run_casync(casync, "make", tmp_path / "c.catar", tree)
    assert (tmp_path / "t.catar").read_bytes() == (tmp_path / "c.catar").read_bytes()
    assert size == (tmp_path / "t.catar").stat().st_size
    target = tmp_path / "target"
    target.mkdir()
    (target / "stale").write_text("goes away")
    untar(tmp_path / "t.catar", target)
    assert snapshot(target) == snapshot(tree)
    assert not (target / "stale").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _old_target(tmp_path: Path) -> Path:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("the old tree")
    return target


def test_failures_leave_the_old_tree(tree: Path, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    index, _ = make_archive(tree, store, params=ChunkerParams(1024, 4096, 16384))
    target = _old_target(tmp_path)
    # a missing chunk late in the archive
    victim = index[len(index) - 2].id
    blob = store.get(victim)
    store.remove(victim)
    with pytest.raises(ChunkMissing, match=str(victim)):
        untar(index, target, store)
    assert (target / "keep").read_text() == "the old tree"
    # a corrupt one
    store.put(victim, blob[:-20] + bytes(20))
    with pytest.raises(CorruptChunk, match=str(victim)):
        untar(index, target, store)
    assert sorted(p.name for p in target.iterdir()) == ["keep"]
    # a truncated archive
    tar(tree, tmp_path / "t.catar")
    raw = (tmp_path / "t.catar").read_bytes()
    (tmp_path / "cut.catar").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InvalidArchive):
        untar(tmp_path / "cut.catar", target)
    assert sorted(p.name for p in target.iterdir()) == ["keep"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_archive_index_flags(tree: Path, tmp_path: Path) -> None:
    index, _ = make_archive(
        tree, None, feature_flags=ff.make_flags(with_=("unix",)), digest="blake3"
    )
    assert index.digest == "blake3"
    assert index.feature_flags & ff.ARIA_BLAKE3
    assert Index.parse(index.to_bytes()).feature_flags == index.feature_flags
