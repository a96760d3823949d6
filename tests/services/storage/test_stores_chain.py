"""ChainStore, CacheStore and open_store's desync-style locations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aria_actors.services.storage.chunks import compress
from aria_actors.services.storage.errors import (
    ChunkMissing,
    CorruptChunk,
    StoreError,
    StoreReadOnly,
    UnsupportedFeature,
)
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.stores.base import Store
from aria_actors.services.storage.stores.chain import CacheStore, ChainStore, open_store
from aria_actors.services.storage.stores.http import HttpStore
from aria_actors.services.storage.stores.local import LocalStore
from aria_actors.services.storage.stores.s3 import S3Store

from .stores_support import ThreadedChunkServer, chunk


class Broken(Store):
    """A store that fails every call (a server that is down)."""

    def __init__(self, name: str = "broken://", *, writable: bool = True) -> None:
        self.location = name
        self.writable = writable
        self.calls: list[str] = []

    def _fail(self, what: str) -> StoreError:
        self.calls.append(what)
        return StoreError(f"store {self.location}: {what}: down", store=self.location)

    def get(self, chunk_id: ChunkId) -> bytes:
        raise self._fail("get")

    def has(self, chunk_id: ChunkId) -> bool:
        raise self._fail("has")

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        raise self._fail("put")

    def remove(self, chunk_id: ChunkId) -> None:
        raise self._fail("remove")

    def ids(self) -> Iterator[ChunkId]:
        raise self._fail("ids")


@pytest.fixture
def a(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "a")


@pytest.fixture
def b(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "b")


# -- ChainStore -------------------------------------------------------------------------------


def test_the_first_store_that_has_it_wins(a: LocalStore, b: LocalStore) -> None:
    chunk_id, blob, data = chunk()
    gzipped = compress(data, compression="gzip")
    b.put(chunk_id, gzipped)
    chain = ChainStore([a, b])
    assert chain.get(chunk_id) == gzipped
    a.put(chunk_id, blob)
    assert chain.get(chunk_id) == blob
    assert chain.has(chunk_id)
    assert chain.size(chunk_id) == len(blob)


def test_a_chunk_in_no_store_names_every_store_tried(a: LocalStore, b: LocalStore) -> None:
    chunk_id = chunk()[0]
    chain = ChainStore([a, b])
    with pytest.raises(ChunkMissing) as caught:
        chain.get(chunk_id)
    assert caught.value.chunk_id == chunk_id.hex()
    assert a.location in str(caught.value)
    assert b.location in str(caught.value)
    assert not chain.has(chunk_id)


def test_a_failing_store_is_passed_over_but_not_hidden(b: LocalStore) -> None:
    chunk_id, blob, _ = chunk()
    b.put(chunk_id, blob)
    down = Broken()
    chain = ChainStore([down, b])
    assert chain.get(chunk_id) == blob
    assert chain.has(chunk_id)
    other = chunk()[0]
    with pytest.raises(StoreError, match="1 of its stores failed") as caught:
        chain.get(other)
    assert not isinstance(caught.value, ChunkMissing)
    assert "broken://" in str(caught.value)
    with pytest.raises(StoreError, match="down"):
        chain.has(other)


def test_writes_go_to_the_first_writable_store(tmp_path: Path, b: LocalStore) -> None:
    (tmp_path / "ro").mkdir()
    ro = LocalStore(tmp_path / "ro", writable=False)
    chain = ChainStore([ro, b])
    assert chain.writable
    chunk_id, blob, _ = chunk()
    chain.put(chunk_id, blob)
    assert b.has(chunk_id)
    assert not ro.has(chunk_id)
    chain.remove(chunk_id)
    assert not b.has(chunk_id)


def test_a_chain_without_a_writable_store_refuses(tmp_path: Path) -> None:
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
    chain = ChainStore([LocalStore(tmp_path / n, writable=False) for n in ("x", "y")])
    assert not chain.writable
    with pytest.raises(StoreReadOnly, match="none of its stores is writable"):
        chain.put(*chunk()[0:2])


def test_ids_is_the_union(a: LocalStore, b: LocalStore) -> None:
    one, two, three = (chunk() for _ in range(3))
    a.put(one[0], one[1])
    a.put(two[0], two[1])
    b.put(two[0], two[1])
    b.put(three[0], three[1])
    listed = list(ChainStore([a, b]).ids())
    assert sorted(listed) == sorted([one[0], two[0], three[0]])


def test_an_empty_chain_is_an_error() -> None:
    with pytest.raises(StoreError):
        ChainStore([])


# -- CacheStore -------------------------------------------------------------------------------


def test_a_miss_fills_the_cache(a: LocalStore, b: LocalStore) -> None:
    cache, remote = a, b
    chunk_id, blob, _ = chunk()
    remote.put(chunk_id, blob)
    store = CacheStore(cache, remote)
    assert not cache.has(chunk_id)
    assert store.get(chunk_id) == blob
    assert cache.get(chunk_id) == blob
    remote.remove(chunk_id)
    assert store.get(chunk_id) == blob  # from the cache now


def test_a_corrupt_remote_chunk_is_refused_and_not_cached(a: LocalStore, b: LocalStore) -> None:
    cache, remote = a, b
    chunk_id = chunk()[0]
    remote.put(chunk_id, compress(b"not the chunk with that id"))
    store = CacheStore(cache, remote)
    with pytest.raises(CorruptChunk) as caught:
        store.get(chunk_id)
    assert caught.value.chunk_id == chunk_id.hex()
    assert not cache.has(chunk_id)


def test_the_cache_checks_with_its_digest(a: LocalStore, b: LocalStore) -> None:
    data = b"a blake3 store" * 300
    chunk_id = ChunkId.of(data, "blake3")
    b.put(chunk_id, compress(data))
    assert CacheStore(a, b, digest="blake3").get(chunk_id) == compress(data)
    with pytest.raises(CorruptChunk):
        CacheStore(LocalStore(a.root / "other"), b).get(chunk_id)  # sha512-256 by default
    with pytest.raises(UnsupportedFeature):
        CacheStore(a, b, digest="md5")


def test_writes_go_to_the_remote_then_the_cache(a: LocalStore, b: LocalStore) -> None:
    cache, remote = a, b
    store = CacheStore(cache, remote)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    assert remote.get(chunk_id) == blob
    assert cache.get(chunk_id) == blob
    assert list(store.ids()) == [chunk_id]
    store.remove(chunk_id)
    assert not remote.has(chunk_id)
    assert not cache.has(chunk_id)


def test_a_failing_remote_write_leaves_the_cache_alone(a: LocalStore) -> None:
    store = CacheStore(a, Broken())
    chunk_id, blob, _ = chunk()
    with pytest.raises(StoreError, match="down"):
        store.put(chunk_id, blob)
    assert not a.has(chunk_id)


def test_a_failing_cache_is_bypassed(b: LocalStore) -> None:
    cache = Broken("broken-cache://")
    store = CacheStore(cache, b)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)  # the cache write fails: logged only
    assert b.get(chunk_id) == blob
    assert store.get(chunk_id) == blob
    assert store.has(chunk_id)
    assert cache.calls[:1] == ["put"]
    assert "get" in cache.calls


def test_a_read_only_remote_makes_a_read_only_cache_store(tmp_path: Path, a: LocalStore) -> None:
    (tmp_path / "remote").mkdir()
    store = CacheStore(a, LocalStore(tmp_path / "remote", writable=False))
    assert not store.writable
    with pytest.raises(StoreReadOnly):
        store.put(*chunk()[0:2])


def test_a_local_cache_in_front_of_a_chunk_server(tmp_path: Path, b: LocalStore) -> None:
    made = [chunk() for _ in range(10)]
    for chunk_id, blob, _ in made:
        b.put(chunk_id, blob)
    with ThreadedChunkServer(b, writable=False) as running:
        remote = HttpStore(running.url)
        store = CacheStore(LocalStore(tmp_path / "cache"), remote)
        for chunk_id, blob, _ in made:
            assert store.get(chunk_id) == blob
        served = running.requests
        for chunk_id, blob, _ in made:
            assert store.get(chunk_id) == blob  # all from the cache
        assert running.requests == served
        store.close()


# -- open_store -------------------------------------------------------------------------------


def test_local_locations(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "plain"))
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "plain"
    url = open_store(f"file://{tmp_path}/with%20space")
    assert isinstance(url, LocalStore)
    assert url.root == tmp_path / "with space"
    ro = open_store(str(tmp_path / "plain"), writable=False)
    assert not ro.writable
    with pytest.raises(StoreError, match="on this host"):
        open_store("file://elsewhere/x")


def test_http_locations() -> None:
    store = open_store("https://chunks.example.com:8443/store", token="t", retries=0)
    assert isinstance(store, HttpStore)
    assert store.location == "https://chunks.example.com:8443/store/"
    store.close()


def test_s3_locations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ACCESS_KEY", "from-env")
    monkeypatch.setenv("S3_SECRET_KEY", "secret-from-env")
    monkeypatch.setenv("S3_REGION", "eu-west-3")
    store = open_store("s3+http://127.0.0.1:9000/bucket/some/prefix?lookup=path")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("bucket", "some/prefix")
    assert store.endpoint_url == "http://127.0.0.1:9000"
    assert store.location == "s3+http://127.0.0.1:9000/bucket/some/prefix"
    client = store._client
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.region_name == "eu-west-3"
    assert client._request_signer._credentials.access_key == "from-env"
    store.close()

    aws = open_store("s3+https://s3-eu-west-3.amazonaws.com/desync.bucket", access_key="k")
    assert isinstance(aws, S3Store)
    assert (aws.bucket, aws.prefix) == ("desync.bucket", "")
    assert aws.endpoint_url == "https://s3-eu-west-3.amazonaws.com"
    assert aws._client._request_signer._credentials.access_key == "k"
    assert aws._client.meta.config.s3["addressing_style"] == "auto"
    aws.close()
    dns = open_store("s3+https://example.com/b/p?lookup=dns")
    assert isinstance(dns, S3Store)
    assert dns._client.meta.config.s3["addressing_style"] == "virtual"
    dns.close()


@pytest.mark.parametrize(
    ("location", "pattern"),
    [
        ("s3+http://127.0.0.1:9000/", "no bucket"),
        ("s3+http://127.0.0.1:9000/b?lookup=sideways", "lookup must be"),
        ("s3+http://127.0.0.1:9000/b?region=x", "unknown parameter 'region'"),
        ("s3+http://key:secret@127.0.0.1:9000/b", "credentials in the URL"),
        ("sftp://host", "no store directory"),
        ("sftp://user:pw@host/x", "password in the URL"),
        ("sftp://host:notaport/x", "Port"),
        ("ssh://host/store", r"unknown store scheme 'ssh'.*use sftp://"),
        ("gs://bucket/store", "unknown store scheme 'gs'"),
        ("oci+https://ghcr.io/x/y", "unknown store scheme 'oci\\+https'"),
        ("ftp://host/store", "unknown store scheme 'ftp'"),
    ],
)
def test_bad_locations(location: str, pattern: str) -> None:
    with pytest.raises(StoreError, match=pattern) as caught:
        open_store(location)
    assert caught.value.store == location
