"""aria_storage on a node, on SQLite and on PostgreSQL: assets and versions, dedup,
fetches, retention, garbage collection (and its lock with makes), integrity checks
and repair, bad input, a damaged index file, store actors and their restarts, and
bad settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aria_actors import Node, StartError
from aria_actors.services.data.client import Data
from aria_actors.services.storage.actors import (
    CATALOGUE,
    MAINTENANCE,
    coordination,
    store_actor_name,
)
from aria_actors.services.storage.catalogue import (
    AssetConflict,
    InvalidName,
    StoreLock,
    UnknownAsset,
    UnknownStore,
    UnknownVersion,
    VersionRetired,
    check_asset_name,
    retention_victims,
)
from aria_actors.services.storage.chunks import compress
from aria_actors.services.storage.client import Storage
from aria_actors.services.storage.errors import (
    ChunkMissing,
    CorruptChunk,
    InvalidIndex,
    StorageError,
)
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.messages import GetIndex
from aria_actors.testing import wait_restarted, wait_until

from .service_support import (
    chunk_path,
    corrupt,
    index_files,
    index_of,
    metric,
    random_bytes,
    storage_node,
    storage_settings,
    stored_ids,
    write,
)

DAY = 86400.0


# A base file and a variant sharing most of its content (an insertion in the middle).
BASE = random_bytes(300_000, seed=1)
VARIANT = BASE[:150_000] + random_bytes(20_000, seed=2) + BASE[150_000:]
OTHER = random_bytes(200_000, seed=3)


# -- versions, dedup, fetches --------------------------------------------------------------


async def test_versions_share_chunks_and_fetch_back_byte_for_byte(
    storage: Storage, node: Node, files: Path, state: Path
) -> None:
    v1 = await storage.add_version("hero", write(files / "a", BASE), metadata={"by": "alice"})
    v2 = await storage.add_version("hero", write(files / "b", VARIANT))
    assert (v1.number, v2.number) == (1, 2)
    assert (v1.store, v1.size, v2.size) == ("default", len(BASE), len(VARIANT))
    assert v1.metadata == {"by": "alice"}
    assert v2.metadata == {}
    assert v1.new_chunks == v1.unique_chunks == v1.chunks > 10
    # the variant stores only the chunks around the insertion
    assert 0 < v2.new_chunks <= 4 < v2.chunks
    assert stored_ids(state) == {c.hex() for c in index_of(files / "a").unique_ids()} | {
        c.hex() for c in index_of(files / "b").unique_ids()
    }

    [summary] = await storage.assets()
    assert (summary.name, summary.versions, summary.latest, summary.size) == (
        "hero",
        2,
        2,
        len(VARIANT),
    )
    assert [v.number for v in await storage.versions("hero")] == [1, 2]
    assert (await storage.version("hero")).number == 2
    assert (await storage.version("hero", 1)).index_digest == v1.index_digest

    info = await storage.info("hero")
    assert info.chunk_refs == v1.chunks + v2.chunks
    assert info.unique_chunks == v1.chunks + v2.new_chunks
    assert info.dedup_ratio > 1.8
    assert info.in_store == info.unique_chunks
    assert info.stored_bytes > 0
    assert info.logical_bytes == len(BASE) + len(VARIANT)

    # dedup in the metrics: chunks ingested vs chunks written
    ingested = metric(node, "aria_storage_ingested_chunks_total", store="default")
    written = metric(node, "aria_storage_new_chunks_total", store="default")
    assert (ingested, written) == (v1.chunks + v2.chunks, v1.new_chunks + v2.new_chunks)
    assert metric(node, "aria_storage_store_seconds_count", store="default", op="put") == written

    out = files / "out"
    first = await storage.fetch("hero", str(out), version=1)
    assert out.read_bytes() == BASE
    assert (first.version, first.size, first.from_store) == (1, len(BASE), first.unique_chunks)
    second = await storage.fetch("hero", str(out))  # newest; the old file seeds it
    assert out.read_bytes() == VARIANT
    assert second.version == 2
    assert second.from_seed > 0
    index = await storage.index("hero", 1)
    assert index == index_of(files / "a")


async def test_adds_to_one_asset_are_serialized(storage: Storage, files: Path) -> None:
    sources = [random_bytes(50_000, seed=10 + i) for i in range(4)]
    paths = [write(files / f"f{i}", data) for i, data in enumerate(sources)]
    added = await asyncio.gather(*(storage.add_version("many", p) for p in paths))
    assert sorted(v.number for v in added) == [1, 2, 3, 4]
    for version, data in zip(added, sources, strict=True):
        out = files / f"out{version.number}"
        await storage.fetch("many", str(out), version.number)
        assert out.read_bytes() == data


# -- retention -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ages", "keep_last", "keep_days", "retired"),
    [
        ([5, 4, 3, 2, 1], 2, 0, [1, 2, 3]),
        ([5, 4, 3, 2, 1], 0, 2.5, [1, 2, 3]),
        ([5, 4, 3, 2, 1], 1, 3.5, [1, 2]),  # either rule keeps a version
        ([5, 4, 3, 2, 1], 0, 0, []),  # both rules off: keep everything
        ([9, 8], 0, 1, [1]),  # the newest survives even when old
        ([9], 1, 1, []),
    ],
)
def test_the_retention_policy(
    ages: list[float], keep_last: int, keep_days: float, retired: list[int]
) -> None:
    now = 100 * DAY
    versions = [(n, now - age * DAY) for n, age in enumerate(ages, 1)]
    assert retention_victims(versions, keep_last, keep_days, now) == retired


@pytest.mark.parametrize("settings", [storage_settings(keep_last=2)])
async def test_retention_retires_old_versions_never_the_newest(
    storage: Storage, files: Path
) -> None:
    for i in range(4):
        await storage.add_version("hero", write(files / f"v{i}", BASE + bytes([i]) * 100))
    retired = await storage.retire()  # the policy, every asset
    assert [(r.asset, r.number, r.reason) for r in retired] == [
        ("hero", 1, "policy"),
        ("hero", 2, "policy"),
    ]
    assert await storage.retire("hero") == []  # nothing more to do
    assert [v.number for v in await storage.versions("hero")] == [3, 4]
    every = await storage.versions("hero", include_retired=True)
    assert [(v.number, v.retired) for v in every] == [(1, True), (2, True), (3, False), (4, False)]
    with pytest.raises(VersionRetired, match="version 1 was retired"):
        await storage.fetch("hero", str(files / "out"), 1)
    with pytest.raises(AssetConflict, match="newest"):
        await storage.retire("hero", [4])
    with pytest.raises(UnknownVersion, match="no version 9"):
        await storage.retire("hero", [9])
    [done] = await storage.retire("hero", [3])
    assert (done.number, done.reason) == (3, "explicit")
    [summary] = await storage.assets()
    assert (summary.versions, summary.retired, summary.latest) == (1, 3, 4)


@pytest.mark.parametrize("settings", [storage_settings(keep_days=7)])
async def test_retention_by_age(storage: Storage, node: Node, files: Path) -> None:
    for i in range(3):
        await storage.add_version("hero", write(files / f"v{i}", OTHER + bytes([i])))
    db = Data(node).database()
    old = (await storage.version("hero", 1)).created_at - 30 * DAY
    await db.execute(
        "UPDATE storage_versions SET created_at = $1 WHERE asset = 'hero' AND number < 3", old
    )
    retired = await storage.retire("hero")
    assert [r.number for r in retired] == [1, 2]
    await db.execute("UPDATE storage_versions SET created_at = $1 WHERE asset = 'hero'", old)
    assert await storage.retire("hero") == []  # the newest stays, however old


# -- garbage collection --------------------------------------------------------------------


@pytest.mark.parametrize("settings", [storage_settings(keep_last=1, gc_grace=0)])
async def test_gc_removes_only_what_no_live_version_uses(
    storage: Storage, node: Node, files: Path, state: Path
) -> None:
    v1 = await storage.add_version("hero", write(files / "a", BASE))
    await storage.add_version("hero", write(files / "b", VARIANT))
    await storage.add_version("villain", write(files / "c", OTHER))
    live = {c.hex() for c in index_of(files / "b").unique_ids()}
    live |= {c.hex() for c in index_of(files / "c").unique_ids()}
    only_v1 = stored_ids(state) - live
    assert only_v1

    dry = await storage.collect_garbage(dry_run=True)
    assert dry.retired == []
    assert dry.stores[0].removed == 0
    assert dry.stores[0].unreferenced == 0  # retention does not run in a dry run

    result = await storage.collect_garbage()
    assert [(r.asset, r.number) for r in result.retired] == [("hero", 1)]
    [report] = result.stores
    assert (report.store, report.live_versions, report.referenced) == ("default", 2, len(live))
    assert report.removed == report.unreferenced == len(only_v1)
    assert report.removed_indexes == 1
    assert stored_ids(state) == live
    assert f"{v1.index_digest}.caibx" not in index_files(state)
    assert metric(node, "aria_storage_gc_removed_chunks_total", store="default") == len(only_v1)
    assert metric(node, "aria_storage_live_chunks", store="default") == len(live)
    assert metric(node, "aria_storage_chunks", store="default") == len(live)

    for asset, source in (("hero", VARIANT), ("villain", OTHER)):
        await storage.fetch(asset, str(files / "out"))
        assert (files / "out").read_bytes() == source
    [check] = await storage.check_integrity(full=True)
    assert check.ok
    assert check.checked == len(live)
    again = await storage.collect_garbage()
    assert again.stores[0].removed == 0


@pytest.mark.parametrize("settings", [storage_settings(keep_last=1, gc_grace=3600)])
async def test_gc_waits_for_the_grace_period(
    storage: Storage, node: Node, files: Path, state: Path
) -> None:
    await storage.add_version("hero", write(files / "a", BASE))
    await storage.add_version("hero", write(files / "b", OTHER))
    before = stored_ids(state)
    first = await storage.collect_garbage()
    [report] = first.stores
    assert report.removed == 0
    assert report.deferred == report.unreferenced > 0
    assert stored_ids(state) == before
    # an hour later (the candidates' first sighting moved back)
    db = Data(node).database()
    await db.execute("UPDATE storage_gc_candidates SET first_seen = first_seen - 3601")
    dry = await storage.collect_garbage(dry_run=True)
    assert dry.stores[0].removed == 0
    assert dry.stores[0].deferred == 0
    second = await storage.collect_garbage()
    assert second.stores[0].removed == report.unreferenced
    assert stored_ids(state) == {c.hex() for c in index_of(files / "b").unique_ids()}
    assert await db.fetchval("SELECT COUNT(*) FROM storage_gc_candidates") == 0


@pytest.mark.parametrize("settings", [storage_settings(gc_grace=0)])
async def test_gc_never_runs_while_a_make_holds_the_store(
    storage: Storage, node: Node, files: Path, state: Path
) -> None:
    await storage.add_version("hero", write(files / "a", BASE))
    lock = coordination(node).lock("default")
    async with lock.shared():  # what an add holds while it makes into the store
        gc = asyncio.ensure_future(storage.collect_garbage())
        await wait_until(lambda: lock.waiting == 1)
        assert not gc.done()
        # a later add queues behind the waiting collector
        add = asyncio.ensure_future(storage.add_version("late", write(files / "b", OTHER)))
        await wait_until(lambda: lock.waiting == 2)
    result = await gc
    assert result.stores[0].removed == 0
    late = await add
    assert late.number == 1
    [check] = await storage.check_integrity(full=True)
    assert check.ok


@pytest.mark.parametrize("settings", [storage_settings(gc_grace=0, keep_last=1)])
async def test_adds_and_collections_at_once_keep_every_live_chunk(
    storage: Storage, files: Path
) -> None:
    async def adds() -> None:
        for i in range(6):
            data = BASE[: 100_000 * (i % 3 + 1)] + random_bytes(30_000, seed=100 + i)
            await storage.add_version("busy", write(files / f"busy{i}", data))

    async def collections() -> None:
        for _ in range(6):
            await storage.collect_garbage()
            await asyncio.sleep(0)

    await asyncio.gather(adds(), collections())
    await storage.collect_garbage()
    [check] = await storage.check_integrity(full=True)
    assert check.ok
    assert check.versions == 1
    await storage.fetch("busy", str(files / "out"))
    assert (files / "out").read_bytes() == (files / "busy5").read_bytes()


@pytest.mark.parametrize("settings", [storage_settings(gc_grace=0)])
async def test_a_deleted_asset_is_collected(storage: Storage, files: Path, state: Path) -> None:
    await storage.add_version("hero", write(files / "a", BASE))
    await storage.add_version("hero", write(files / "b", VARIANT))
    await storage.add_version("keep", write(files / "c", OTHER))
    assert await storage.delete_asset("hero") == 2
    assert [a.name for a in await storage.assets()] == ["keep"]
    with pytest.raises(UnknownAsset):
        await storage.versions("hero")
    result = await storage.collect_garbage()
    assert result.stores[0].removed > 0
    assert stored_ids(state) == {c.hex() for c in index_of(files / "c").unique_ids()}
    assert len(index_files(state)) == 1
    again = await storage.add_version("hero", str(files / "a"))  # numbering starts anew
    assert again.number == 1
    assert again.new_chunks == again.unique_chunks


def test_the_store_lock_is_fifo() -> None:
    async def scenario() -> list[str]:
        lock = StoreLock()
        order: list[str] = []

        async def reader(name: str, hold: asyncio.Event) -> None:
            async with lock.shared():
                order.append(name)
                await hold.wait()

        async def writer() -> None:
            async with lock.exclusive():
                order.append("gc")

        release = asyncio.Event()
        first = asyncio.ensure_future(reader("r1", release))
        await asyncio.sleep(0)
        gc = asyncio.ensure_future(writer())
        await asyncio.sleep(0)
        late = asyncio.ensure_future(reader("r2", asyncio.Event()))
        await asyncio.sleep(0)
        assert order == ["r1"]
        assert lock.waiting == 2
        release.set()
        await asyncio.wait_for(asyncio.gather(first, gc), 5)
        await asyncio.sleep(0)
        late.cancel()
        return order

    assert asyncio.run(scenario()) == ["r1", "gc", "r2"]


# -- integrity -----------------------------------------------------------------------------


async def test_the_integrity_check_finds_a_corrupt_chunk_and_repair_lets_an_add_restore_it(
    storage: Storage,
    node: Node,
    files: Path,
    state: Path,
    logs: list[dict[str, Any]],
) -> None:
    version = await storage.add_version("hero", write(files / "a", BASE))
    [clean] = await storage.check_integrity(full=True)
    assert clean.ok
    assert clean.checked == version.unique_chunks
    victim = index_of(files / "a")[3].id.hex()
    corrupt(chunk_path(state, victim))

    [report] = await storage.check_integrity(full=True)
    assert (report.corrupt, report.removed, report.affected) == ([victim], [], ["hero@1"])
    assert not report.ok
    assert metric(node, "aria_storage_integrity_failures_total", store="default", kind="corrupt")
    assert any(e["event"] == "integrity_failures" and e["corrupt"] == [victim] for e in logs)
    with pytest.raises(CorruptChunk):
        await storage.fetch("hero", str(files / "out"))
    assert not (files / "out").exists()

    [repaired] = await storage.check_integrity(full=True, repair=True)
    assert repaired.removed == [victim]
    assert not chunk_path(state, victim).exists()
    with pytest.raises(ChunkMissing):
        await storage.fetch("hero", str(files / "out"))
    [missing] = await storage.check_integrity(full=True)
    assert missing.missing == [victim]
    assert missing.affected == ["hero@1"]

    again = await storage.add_version("hero", str(files / "a"))  # re-stores the chunk
    assert again.new_chunks == 1
    [healed] = await storage.check_integrity(full=True)
    assert healed.ok
    await storage.fetch("hero", str(files / "out"), version=1)
    assert (files / "out").read_bytes() == BASE


@pytest.mark.parametrize("settings", [storage_settings(integrity_sample=5)])
async def test_the_periodic_check_reads_a_sample(storage: Storage, files: Path) -> None:
    await storage.add_version("hero", write(files / "a", BASE))
    [report] = await storage.check_integrity()
    assert report.sampled
    assert report.checked == 5 < report.chunks


@pytest.mark.parametrize(
    "settings",
    [storage_settings(keep_last=1, gc_grace=0, gc_interval=0.05, integrity_interval=0.05)],
)
async def test_the_timers_collect_and_check_by_themselves(
    storage: Storage, node: Node, files: Path, state: Path
) -> None:
    await storage.add_version("hero", write(files / "a", BASE))
    await storage.add_version("hero", write(files / "b", OTHER))
    await wait_until(
        lambda: metric(node, "aria_storage_gc_removed_chunks_total", store="default") > 0,
        timeout=30,
        interval=0.01,
    )
    await wait_until(
        lambda: metric(node, "aria_storage_integrity_checked_chunks_total", store="default") > 0,
        timeout=30,
        interval=0.01,
    )
    assert [v.number for v in await storage.versions("hero")] == [2]
    await wait_until(
        lambda: stored_ids(state) == {c.hex() for c in index_of(files / "b").unique_ids()},
        timeout=30,
        interval=0.01,
    )


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a/b", "path separator"),
        ("..\\x", "path separator"),
        ("x" * 201, "limit is 200"),
        ("-leading", "starting with a letter or digit"),
        ("spa ce", "use letters"),
        ("..", "starting with"),
    ],
)
def test_bad_asset_names_are_refused(name: str, why: str) -> None:
    with pytest.raises(InvalidName, match=why):
        check_asset_name(name)


async def test_bad_requests_get_clear_errors_and_the_actors_keep_running(
    storage: Storage, node: Node, files: Path
) -> None:
    catalogue = node.whereis(CATALOGUE)
    await storage.add_version("hero", write(files / "a", BASE))
    with pytest.raises(UnknownAsset, match="no asset 'nobody'"):
        await storage.versions("nobody")
    with pytest.raises(UnknownAsset):
        await storage.fetch("nobody", str(files / "out"))
    with pytest.raises(UnknownAsset):
        await storage.info("nobody")
    with pytest.raises(UnknownAsset):
        await storage.delete_asset("nobody")
    with pytest.raises(UnknownVersion, match="no version 7"):
        await storage.fetch("hero", str(files / "out"), 7)
    with pytest.raises(UnknownVersion, match="start at 1"):
        await storage.version("hero", -1)
    with pytest.raises(InvalidName, match="path separator"):
        await storage.add_version("../etc/passwd", str(files / "a"))
    with pytest.raises(InvalidName):
        await storage.versions("a/b")
    with pytest.raises(ValueError, match="absolute"):
        await storage.add_version("hero", "relative/file")
    with pytest.raises(ValueError, match="absolute"):
        await storage.fetch("hero", "out")
    with pytest.raises(StorageError, match="no such file"):
        await storage.add_version("hero", str(files / "missing"))
    with pytest.raises(StorageError, match="is a directory"):
        await storage.add_version("hero", str(files))
    with pytest.raises(StorageError, match="no such directory"):
        await storage.fetch("hero", str(files / "nowhere" / "out"))
    with pytest.raises(ValueError, match="limit"):
        await storage.add_version("hero", str(files / "a"), metadata={"x": "y" * 70_000})
    with pytest.raises(ValueError, match="JSON"):
        await storage.add_version("hero", str(files / "a"), metadata={"x": object()})
    with pytest.raises(UnknownStore, match="no store 'elsewhere'"):
        await storage.add_version("new", str(files / "a"), store="elsewhere")
    with pytest.raises(UnknownStore):
        await storage.check_integrity("elsewhere")
    with pytest.raises(ValueError, match="needs the asset"):
        await storage.retire("", [1])
    assert node.whereis(CATALOGUE) == catalogue
    assert catalogue is not None
    assert catalogue.is_alive()
    assert [v.number for v in await storage.versions("hero")] == [1]


async def test_a_damaged_index_file_is_reported_and_nothing_is_removed(
    storage: Storage, node: Node, files: Path, state: Path
) -> None:
    version = await storage.add_version("hero", write(files / "a", BASE))
    catalogue = node.whereis(CATALOGUE)
    assert catalogue is not None
    path = state / "storage" / "indexes" / version.index_path
    path.write_bytes(path.read_bytes()[:-7])  # truncated
    with pytest.raises(InvalidIndex, match="does not match its recorded SHA-256"):
        await storage.fetch("hero", str(files / "out"))
    with pytest.raises(InvalidIndex, match="asset 'hero' version 1"):
        await catalogue.call(GetIndex("hero"))
    path.unlink()
    with pytest.raises(InvalidIndex, match="index file is missing"):
        await storage.index("hero")
    before = stored_ids(state)
    [report] = (await storage.collect_garbage()).stores
    assert "cannot be read, nothing removed" in report.error
    assert report.removed == 0
    assert stored_ids(state) == before
    [check] = await storage.check_integrity(full=True)
    assert check.bad_indexes
    assert "hero@1" in check.bad_indexes[0]
    assert node.whereis(CATALOGUE) == catalogue
    assert catalogue.is_alive()
    maintenance = node.whereis(MAINTENANCE)
    assert maintenance is not None
    assert maintenance.is_alive()
    # the same content added again writes the index file back
    await storage.add_version("hero", str(files / "a"))
    await storage.fetch("hero", str(files / "out"), version=1)
    assert (files / "out").read_bytes() == BASE


# -- store actors --------------------------------------------------------------------------


async def test_store_actors_serve_chunks_and_check_what_they_are_given(
    storage: Storage, state: Path
) -> None:
    data = random_bytes(10_000, seed=9)
    chunk_id = ChunkId.of(data).hex()
    blob = compress(data)
    assert not await storage.has_chunk("default", chunk_id)
    with pytest.raises(ChunkMissing):
        await storage.get_chunk("default", chunk_id)
    assert await storage.put_chunk("default", chunk_id, blob)
    assert not await storage.put_chunk("default", chunk_id, blob)  # already there
    assert await storage.has_chunk("default", chunk_id)
    assert await storage.get_chunk("default", chunk_id) == blob
    other = ChunkId.of(b"something else").hex()
    with pytest.raises(CorruptChunk):
        await storage.put_chunk("default", other, blob)  # not that chunk's bytes
    assert not chunk_path(state, other).exists()
    with pytest.raises(ValueError, match="hex"):
        await storage.has_chunk("default", "not-an-id")
    stats = await storage.store_stats("default", refresh=True)
    assert (stats.chunks, stats.bytes) == (1, len(blob))
    [description] = await storage.stores()
    assert (description.name, description.default) == ("default", True)
    assert description.location == str(state / "storage" / "stores" / "default")


async def test_a_crashed_store_actor_is_restarted_alone(
    storage: Storage, node: Node, files: Path
) -> None:
    await storage.add_version("hero", write(files / "a", BASE))
    name = store_actor_name("default")
    store_ref = node.whereis(name)
    catalogue = node.whereis(CATALOGUE)
    assert store_ref is not None
    store_ref._proc.kill()
    await wait_restarted(node, name, store_ref)
    assert node.whereis(CATALOGUE) == catalogue  # the dynamic supervisor restarted it alone
    await storage.add_version("hero", write(files / "b", VARIANT))
    await storage.fetch("hero", str(files / "out"))
    assert (files / "out").read_bytes() == VARIANT


async def test_a_crashed_catalogue_comes_back_with_its_data(
    storage: Storage, node: Node, files: Path
) -> None:
    await storage.add_version("hero", write(files / "a", BASE))
    ref = node.whereis(CATALOGUE)
    assert ref is not None
    ref._proc.kill()
    await wait_restarted(node, CATALOGUE, ref)
    assert [v.number for v in await storage.versions("hero")] == [1]


@pytest.mark.parametrize("data_settings", ["sqlite"], indirect=True)
async def test_a_second_store_with_a_cache(
    tmp_path: Path, files: Path, data_settings: dict[str, Any] | None
) -> None:
    state = tmp_path / "cached"
    settings = storage_settings(
        gc_grace=0,
        stores={
            "default": {},
            "remote": {"location": str(tmp_path / "remote"), "cache": "default"},
            "readonly": {"location": str(tmp_path / "remote"), "writable": False, "gc": False},
        },
    )
    async with storage_node(state, settings, data_settings) as node:
        storage = Storage(node)
        version = await storage.add_version("far", write(files / "a", OTHER), store="remote")
        assert version.store == "remote"
        remote = {p.name.removesuffix(".cacnk") for p in (tmp_path / "remote").glob("*/*")}
        assert len(remote) == version.unique_chunks
        assert stored_ids(state) == remote  # written through the cache
        with pytest.raises(AssetConflict, match="lives in store 'remote'"):
            await storage.add_version("far", str(files / "a"), store="default")
        with pytest.raises(AssetConflict, match="read-only"):
            await storage.add_version("ro", str(files / "a"), store="readonly")
        await storage.fetch("far", str(files / "out"))
        assert (files / "out").read_bytes() == OTHER
        result = await storage.collect_garbage()
        skipped = {r.store: r.skipped for r in result.stores}
        assert skipped == {"default": "", "remote": "", "readonly": "gc = false"}
        assert sum(r.removed for r in result.stores) == 0
        assert stored_ids(state) == remote  # the cache keeps what the remote's versions use
        assert sorted(d.name for d in await storage.stores()) == ["default", "readonly", "remote"]


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ({"keep_last": -1}, ["services.aria_storage.keep_last"]),
        ({"gc_grace": -5}, ["services.aria_storage.gc_grace"]),
        ({"compression_level": 30}, ["services.aria_storage.compression_level", "1..22"]),
        ({"avg_chunk": 1_000_000}, ["min_chunk/avg_chunk/max_chunk"]),
        ({"digest": "md5"}, ["services.aria_storage.digest"]),
        ({"bogus": 1}, ["services.aria_storage.bogus", "unknown key"]),
        ({"default_store": "nope"}, ["services.aria_storage.default_store", "nope"]),
        (
            {"stores": {"default": {"cache": "ghost"}}},
            ["services.aria_storage.stores.default.cache", "ghost"],
        ),
        (
            {"stores": {"default": {"location": "ftp://host/x"}}},
            ["services.aria_storage.stores.default.location", "ftp"],
        ),
        (
            {"stores": {"default": {"writable": "yes"}}},
            ["services.aria_storage.stores.default.writable"],
        ),
        ({"stores": {"bad name": {}}}, ["services.aria_storage.stores.bad name"]),
        (
            {"stores": {"default": {"options": {"no_such_option": 1}}}},
            ["services.aria_storage.stores.default.options"],
        ),
    ],
)
async def test_bad_settings_stop_the_start_naming_the_key(
    tmp_path: Path, bad: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(StartError) as caught:
        async with storage_node(tmp_path / "state", storage_settings(**bad)):
            pass
    for word in words:
        assert word in str(caught.value)
