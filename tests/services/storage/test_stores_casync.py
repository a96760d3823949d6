"""Interop: casync itself reads chunks from our chunk-server over HTTP, and our HTTP store
reads a store casync wrote."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aria_actors.services.storage.stores.base import fetch_chunk
from aria_actors.services.storage.stores.chain import CacheStore, open_store
from aria_actors.services.storage.stores.local import LocalStore

from .casync import run_casync
from .stores_support import ThreadedChunkServer

pytestmark = pytest.mark.integration


@pytest.fixture
def made_by_casync(casync: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(blob, its .caibx, the store casync wrote its chunks into)."""
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(1_500_000) + b"\0" * 500_000 + os.urandom(700_000))
    store = tmp_path / "casync-store"
    index = tmp_path / "blob.caibx"
    run_casync(casync, "make", f"--store={store}", index, blob)
    return blob, index, store


def test_casync_extracts_from_our_chunk_server(
    casync: str,
    made_by_casync: tuple[Path, Path, Path],
    tmp_path: Path,
) -> None:
    blob, index, store = made_by_casync
    with ThreadedChunkServer(LocalStore(store, writable=False)) as running:
        out = tmp_path / "out"
        run_casync(casync, "extract", f"--store={running.url}", index, out)
        assert out.read_bytes() == blob.read_bytes()
        assert running.requests > 0


def test_our_stores_read_what_casync_wrote(
    made_by_casync: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, _, store = made_by_casync
    written = LocalStore(store, writable=False)
    ids = list(written.ids())
    assert ids
    with ThreadedChunkServer(written) as running:
        remote = open_store(running.url)
        cached = CacheStore(open_store(str(tmp_path / "cache")), remote)
        assert sorted(remote.ids()) == sorted(ids)
        for chunk_id in ids:
            assert fetch_chunk(cached, chunk_id) == fetch_chunk(written, chunk_id)
        assert sorted(LocalStore(tmp_path / "cache").ids()) == sorted(ids)
        cached.close()
