"""aria_storage's directory assets, on SQLite and on PostgreSQL: a directory added as
an archive version (a ``.caidx``) and fetched back as the same tree (contents, modes,
symlinks), dedup between versions, feature flags, retention and garbage collection
of archive chunks, integrity checks of them, bad requests, and rows made before
directories existed."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aria_actors import Node, StartError
from aria_actors.services.data.client import Data
from aria_actors.services.storage import catar_encode
from aria_actors.services.storage import flags as ff
from aria_actors.services.storage.catalogue import MIGRATIONS
from aria_actors.services.storage.catalogue_errors import AssetConflict
from aria_actors.services.storage.client import Storage
from aria_actors.services.storage.errors import (
    ChunkMissing,
    CorruptChunk,
    StorageError,
    UnsupportedFeature,
)
from aria_actors.services.storage.names import CATALOGUE, MAINTENANCE

from .service_support import (
    chunk_path,
    corrupt,
    index_files,
    random_bytes,
    storage_node,
    storage_settings,
    stored_ids,
    write,
)

# -- trees ---------------------------------------------------------------------------------


def build_tree(root: Path) -> Path:
    """A small tree with big and small files, modes, symlinks and empty things."""
    root.mkdir()
    (root / "models").mkdir()
    write(root / "models" / "hero.bin", random_bytes(200_000, seed=21))
    write(root / "models" / "villain.bin", random_bytes(150_000, seed=22))
    (root / "README").write_text("levels of the game\n")
    (root / "bin").mkdir()
    script = root / "bin" / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o755)
    (root / "docs").mkdir()
    notes = root / "docs" / "notes.txt"
    notes.write_text("read me, do not change me\n")
    notes.chmod(0o444)
    (root / "docs").chmod(0o750)
    (root / "empty").write_bytes(b"")
    (root / "cache").mkdir()
    (root / "latest").symlink_to("models/hero.bin")
    (root / "bin" / "dangling").symlink_to("../nowhere")
    os.utime(root / "models" / "hero.bin", ns=(1_600_000_000_123_456_789,) * 2)
    return root


def snapshot(root: Path, mtimes: bool = True) -> dict[str, tuple[object, ...]]:
    """Every node of a tree: directories and their modes, files with modes, contents
    and mtimes (unless not ``mtimes``), symlinks and their targets."""
    out: dict[str, tuple[object, ...]] = {}

    def one(path: Path) -> None:
        relative = path.relative_to(root).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[relative] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[relative] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            mtime = st.st_mtime_ns if mtimes else None
            out[relative] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes(), mtime)

    one(root)
    for top, dirs, names in os.walk(root):
        for name in [*dirs, *names]:
            one(Path(top) / name)
    return out


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def chunk_ids(index: Any) -> set[str]:
    return {c.hex() for c in index.unique_ids()}


# -- adding and fetching -------------------------------------------------------------------


async def test_a_directory_fetches_back_as_the_same_tree(
    storage: Storage, node: Node, files: Path, state: Path
) -> None:
    tree = build_tree(files / "levels")
    expected = snapshot(tree)
    version = await storage.add_version("levels", str(tree), metadata={"by": "bob"})
    assert (version.kind, version.number, version.metadata) == ("archive", 1, {"by": "bob"})
    assert version.index_path.endswith(".caidx")
    assert index_files(state) == {f"{version.index_digest}.caidx"}
    assert version.new_chunks == version.unique_chunks > 10
    assert version.size > 350_000  # the archive: both models and the rest
    index = await storage.index("levels")
    assert index.feature_flags == ff.DEFAULT
    assert stored_ids(state) == chunk_ids(index)

    assert (await storage.version("levels")).kind == "archive"
    [summary] = await storage.assets()
    assert (summary.name, summary.kind, summary.versions) == ("levels", "archive", 1)
    info = await storage.info("levels")
    assert (info.kind, info.unique_chunks, info.in_store) == (
        "archive",
        version.unique_chunks,
        version.unique_chunks,
    )

    out = files / "out"
    result = await storage.fetch("levels", str(out))
    assert (result.kind, result.version, result.target) == ("archive", 1, str(out))
    assert (result.from_store, result.from_seed) == (version.chunks, 0)
    assert (result.chunks, result.unique_chunks, result.size) == (
        version.chunks,
        version.unique_chunks,
        version.size,
    )
    assert snapshot(out) == expected
    assert os.readlink(out / "latest") == "models/hero.bin"
    assert (out / "latest").read_bytes() == (tree / "models" / "hero.bin").read_bytes()

    # onto an existing directory: replaced as a whole
    (out / "stray").write_text("not in the version")
    shutil.rmtree(out / "models")
    await storage.fetch("levels", str(out), version=1)
    assert snapshot(out) == expected
    assert not [name for name in listing(files) if name.startswith(".")]  # no leftovers


async def test_a_second_directory_version_shares_chunks(
    storage: Storage, files: Path, state: Path
) -> None:
    tree = build_tree(files / "levels")
    first = snapshot(tree)
    v1 = await storage.add_version("levels", str(tree))
    write(tree / "models" / "patch.txt", b"a small patch\n")
    (tree / "README").write_text("levels of the game, patched\n")
    second = snapshot(tree)
    v2 = await storage.add_version("levels", str(tree))
    assert (v2.number, v2.kind) == (2, "archive")
    assert 0 < v2.new_chunks <= 4 < v2.chunks  # the models are stored once
    info = await storage.info("levels")
    assert info.chunk_refs == v1.chunks + v2.chunks
    assert info.unique_chunks == v1.unique_chunks + v2.new_chunks
    assert info.dedup_ratio > 1.8
    index1, index2 = await storage.index("levels", 1), await storage.index("levels", 2)
    assert stored_ids(state) == chunk_ids(index1) | chunk_ids(index2)
    assert len(index_files(state)) == 2

    one, two = files / "one", files / "two"
    fetched = await storage.fetch("levels", str(one), version=1)
    assert (fetched.from_store, fetched.from_seed) == (v1.chunks, 0)
    assert snapshot(one) == first
    # another version of the tree seeds a fetch: only what changed comes from the store
    seeded = await storage.fetch("levels", str(two), seeds=[str(one)])
    assert seeded.from_seed + seeded.from_store == seeded.chunks == v2.chunks
    assert seeded.from_seed > 3 * seeded.from_store
    assert snapshot(two) == second
    assert snapshot(one) == first  # a seed is only read
    # so does the tree already at the target
    updated = await storage.fetch("levels", str(one))
    assert updated.from_seed > 3 * updated.from_store
    assert snapshot(one) == second

    # the same tree again: the same index file, nothing new in the store
    v3 = await storage.add_version("levels", str(tree))
    assert (v3.index_digest, v3.new_chunks) == (v2.index_digest, 0)
    assert len(index_files(state)) == 2


@pytest.mark.parametrize("settings", [storage_settings(archive_without=["xattrs", "acl"])])
async def test_feature_flags_from_the_settings_or_the_call(storage: Storage, files: Path) -> None:
    tree = build_tree(files / "levels")
    await storage.add_version("levels", str(tree))
    without = await storage.index("levels")
    assert without.feature_flags == ff.make_flags(
        with_=ff.format_with(ff.DEFAULT), without=["xattrs", "acl"]
    )
    assert not without.feature_flags & (ff.WITH_XATTRS | ff.WITH_ACL)

    await storage.add_version("plain", str(tree), with_=["unix"], without=["fifos"])
    plain = await storage.index("plain")
    assert plain.feature_flags == ff.make_flags(with_=["unix"], without=["fifos"])
    out = files / "out"
    await storage.fetch("plain", str(out))
    assert snapshot(out, mtimes=False) == snapshot(tree, mtimes=False)
    hero = (out / "models" / "hero.bin").stat().st_mtime_ns
    assert hero == 1_600_000_000_000_000_000  # "unix" records seconds only

    with pytest.raises(UnsupportedFeature, match="unknown feature flag 'bogus'"):
        await storage.add_version("levels", str(tree), with_=["bogus"])
    write(files / "file", b"a file")
    with pytest.raises(ValueError, match=r"feature flags .* are for directories"):
        await storage.add_version("file", str(files / "file"), without=["xattrs"])
    assert sorted(a.name for a in await storage.assets()) == ["levels", "plain"]


async def test_a_bad_feature_flag_setting_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(StartError) as caught:
        async with storage_node(tmp_path / "state", storage_settings(archive_with=["bogus"])):
            pass
    assert "services.aria_storage.archive_with" in str(caught.value)
    assert "bogus" in str(caught.value)


# -- retention and garbage collection ------------------------------------------------------


@pytest.mark.parametrize("settings", [storage_settings(keep_last=1, gc_grace=0)])
async def test_gc_keeps_the_chunks_of_live_archives_and_removes_them_after_retirement(
    storage: Storage, files: Path, state: Path
) -> None:
    tree = build_tree(files / "levels")
    v1 = await storage.add_version("levels", str(tree))
    index1 = await storage.index("levels", 1)
    write(tree / "models" / "villain.bin", random_bytes(150_000, seed=99))  # replaced
    await storage.add_version("levels", str(tree))
    index2 = await storage.index("levels", 2)
    blob = await storage.add_version("hero", write(files / "hero.bin", random_bytes(80_000, 7)))
    blob_index = await storage.index("hero")
    only_v1 = chunk_ids(index1) - chunk_ids(index2) - chunk_ids(blob_index)
    assert only_v1

    result = await storage.collect_garbage()
    assert [(r.asset, r.number) for r in result.retired] == [("levels", 1)]
    [report] = result.stores
    assert report.live_versions == 2
    assert report.removed == len(only_v1)
    assert report.removed_indexes == 1
    live = chunk_ids(index2) | chunk_ids(blob_index)
    assert stored_ids(state) == live
    assert index_files(state) == {
        f"{(await storage.version('levels', 2)).index_digest}.caidx",
        f"{blob.index_digest}.caibx",
    }
    assert f"{v1.index_digest}.caidx" not in index_files(state)
    await storage.fetch("levels", str(files / "out"))
    assert snapshot(files / "out") == snapshot(tree)
    [check] = await storage.check_integrity(full=True)
    assert check.ok
    assert check.checked == len(live)

    # the asset deleted, its chunks and index files go; the blob's stay
    assert await storage.delete_asset("levels") == 2
    again = await storage.collect_garbage()
    assert again.stores[0].removed == len(chunk_ids(index2) - chunk_ids(blob_index))
    assert stored_ids(state) == chunk_ids(blob_index)
    assert index_files(state) == {f"{blob.index_digest}.caibx"}


@pytest.mark.parametrize("settings", [storage_settings(gc_grace=0)])
async def test_a_dry_run_counts_archive_chunks_as_referenced(
    storage: Storage, files: Path, state: Path
) -> None:
    tree = build_tree(files / "levels")
    version = await storage.add_version("levels", str(tree))
    before = stored_ids(state)
    [report] = (await storage.collect_garbage(dry_run=True)).stores
    assert (report.referenced, report.unreferenced, report.removed) == (
        version.unique_chunks,
        0,
        0,
    )
    [report] = (await storage.collect_garbage()).stores
    assert report.removed == 0
    assert stored_ids(state) == before


# -- integrity -----------------------------------------------------------------------------


async def test_the_integrity_check_covers_archive_chunks(
    storage: Storage, files: Path, state: Path
) -> None:
    tree = build_tree(files / "levels")
    version = await storage.add_version("levels", str(tree))
    [clean] = await storage.check_integrity(full=True)
    assert (clean.ok, clean.checked, clean.versions) == (True, version.unique_chunks, 1)

    out = files / "out"  # a tree sharing nothing with the version
    out.mkdir()
    write(out / "old.txt", b"the previous tree")
    good = snapshot(out)
    victim = (await storage.index("levels"))[2].id.hex()
    corrupt(chunk_path(state, victim))
    [report] = await storage.check_integrity(full=True)
    assert (report.corrupt, report.affected) == ([victim], ["levels@1"])
    with pytest.raises(CorruptChunk):
        await storage.fetch("levels", str(out))
    assert snapshot(out) == good  # the previous tree stays as it was

    [repaired] = await storage.check_integrity(full=True, repair=True)
    assert repaired.removed == [victim]
    with pytest.raises(ChunkMissing):
        await storage.fetch("levels", str(out))
    assert snapshot(out) == good
    assert listing(files) == ["levels", "out"]  # no leftovers
    again = await storage.add_version("levels", str(tree))  # stores the chunk again
    assert again.new_chunks == 1
    [healed] = await storage.check_integrity(full=True)
    assert healed.ok
    await storage.fetch("levels", str(files / "fresh"), version=1)
    assert snapshot(files / "fresh") == snapshot(tree)


# -- bad requests --------------------------------------------------------------------------


async def test_bad_archive_requests_get_clear_errors_and_the_actors_keep_running(
    storage: Storage, node: Node, files: Path
) -> None:
    catalogue = node.whereis(CATALOGUE)
    maintenance = node.whereis(MAINTENANCE)
    tree = build_tree(files / "levels")
    await storage.add_version("levels", str(tree))
    await storage.add_version("hero", write(files / "hero.bin", random_bytes(20_000, 3)))

    target = write(files / "a-file", b"precious")
    with pytest.raises(StorageError, match="is a file, not a directory"):
        await storage.fetch("levels", target)
    assert snapshot(Path(target))["."][2] == b"precious"
    link = files / "link"
    link.symlink_to(tree)
    with pytest.raises(StorageError, match="is a symlink"):
        await storage.fetch("levels", str(link))
    assert os.readlink(link) == str(tree)
    with pytest.raises(StorageError, match="no such directory"):
        await storage.fetch("levels", str(files / "nowhere" / "out"))
    with pytest.raises(StorageError, match="no-seed"):
        await storage.fetch("levels", str(files / "out"), seeds=[str(files / "no-seed")])
    with pytest.raises(ValueError, match="absolute"):
        await storage.fetch("levels", str(files / "out"), seeds=["relative/seed"])
    assert not (files / "out").exists()
    with pytest.raises(StorageError, match="is a directory; name the file"):
        await storage.fetch("hero", str(tree))

    with pytest.raises(AssetConflict, match=r"holds files .* is a directory"):
        await storage.add_version("hero", str(tree))
    with pytest.raises(AssetConflict, match=r"holds directories .* is a file"):
        await storage.add_version("levels", target)
    with pytest.raises(StorageError, match="no such file or directory"):
        await storage.add_version("levels", str(files / "missing"))

    assert node.whereis(CATALOGUE) == catalogue
    assert node.whereis(MAINTENANCE) == maintenance
    assert catalogue is not None
    assert catalogue.is_alive()
    assert [v.number for v in await storage.versions("levels")] == [1]
    assert [v.number for v in await storage.versions("hero")] == [1]


class _UnlistableOs:
    """``os`` for the catar encoder, refusing to list one directory (as a directory
    without read permission does, which root would still read)."""

    def __init__(self, refused: Path) -> None:
        self.refused = os.path.realpath(refused)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def listdir(self, path: Any) -> list[str]:
        where = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else str(path)
        if where == self.refused:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), where)
        return os.listdir(path)


@pytest.fixture
def unlistable(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make the catar encoder unable to list a directory."""

    def refuse(directory: Path) -> None:
        monkeypatch.setattr(catar_encode, "os", _UnlistableOs(directory))

    return refuse


async def test_a_directory_that_cannot_be_read_is_a_clear_error(
    storage: Storage, node: Node, files: Path, unlistable: Callable[[Path], None]
) -> None:
    catalogue = node.whereis(CATALOGUE)
    tree = build_tree(files / "levels")
    unlistable(tree / "docs")
    with pytest.raises(StorageError, match=r"cannot archive the directory .*levels.*denied"):
        await storage.add_version("levels", str(tree))
    assert await storage.assets() == []  # nothing recorded
    if os.geteuid() != 0:  # root reads it anyway
        (tree / "cache").chmod(0)
        try:
            with pytest.raises(StorageError, match="cannot be read"):
                await storage.add_version("cache", str(tree / "cache"))
        finally:
            (tree / "cache").chmod(0o755)
    assert node.whereis(CATALOGUE) == catalogue
    unlistable(files / "elsewhere")
    version = await storage.add_version("levels", str(tree))
    assert version.number == 1


# -- versions made before directories ------------------------------------------------------


async def test_versions_from_before_the_migration_are_files(
    state: Path, files: Path, data_settings: dict[str, Any] | None, tmp_path: Path
) -> None:
    # the storage tables as the first migration made them, with one version in them
    first = tmp_path / "first-migration"
    for dialect in ("sqlite", "postgres"):
        (first / dialect).mkdir(parents=True)
        shutil.copy(MIGRATIONS / dialect / "0001_storage.sql", first / dialect)
    async with storage_node(state, None, data_settings, only="aria_data") as node:
        data = Data(node)
        assert await data.migrate("aria_storage", first) == ["0001_storage"]
        db = data.database()
        await db.execute(
            "INSERT INTO storage_assets (name, store, next_version, created_at, updated_at) "
            "VALUES ('old', 'default', 2, 1.0, 1.0)"
        )
        await db.execute(
            "INSERT INTO storage_versions (asset, number, index_digest, index_path, size, "
            "chunks, unique_chunks, new_chunks, new_bytes, digest, metadata, created_at) "
            f"VALUES ('old', 1, '{'ab' * 32}', 'ab/{'ab' * 32}.caibx', 10, 1, 1, 1, 5, "
            "'sha512-256', '{}', 1.0)"
        )
    async with storage_node(state, storage_settings(), data_settings) as node:
        storage = Storage(node)
        old = await storage.version("old", 1)
        assert (old.kind, old.size, old.index_path) == ("blob", 10, f"ab/{'ab' * 32}.caibx")
        [summary] = await storage.assets()
        assert summary.kind == "blob"
        states = await Data(node).migration_status("aria_storage", MIGRATIONS)
        assert [(s.name, s.state) for s in states] == [
            ("storage", "applied"),
            ("version_kind", "applied"),
        ]
        with pytest.raises(AssetConflict, match="holds files"):
            await storage.add_version("old", str(build_tree(files / "levels")))
        v2 = await storage.add_version("old", write(files / "f", b"x" * 1000))
        assert (v2.number, v2.kind) == (2, "blob")
