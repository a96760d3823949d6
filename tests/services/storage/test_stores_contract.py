"""The contract every chunk store keeps, run against each of them: the local directory,
HTTP (our chunk-server on loopback), S3 (moto), SFTP (OpenSSH's sshd), a chain and a cache.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest

from aria_actors.services.storage.chunks import Compression
from aria_actors.services.storage.errors import ChunkMissing, StoreError, StoreReadOnly
from aria_actors.services.storage.ids import ChunkId
from aria_actors.services.storage.stores.base import Store, fetch_chunk
from aria_actors.services.storage.stores.chain import CacheStore, ChainStore
from aria_actors.services.storage.stores.http import HttpStore
from aria_actors.services.storage.stores.local import LocalStore
from aria_actors.services.storage.stores.s3 import S3Store
from aria_actors.services.storage.stores.sftp import SftpStore
from tests.servers.fixtures import S3Bucket, SftpTarget

from .stores_support import LOOPBACK, ThreadedChunkServer, chunk, ids_of, threads, wait_until

KINDS = ["local", "http", "s3", "sftp", "chain", "cache"]


@dataclass
class Harness:
    """A writable store, a way to open the same data read-only, and a way to cut a write."""

    store: Store
    read_only: Callable[[], Store]
    interrupt: Callable[[ChunkId, bytes], None]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def _local_interrupt(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def interrupt(chunk_id: ChunkId, blob: bytes) -> None:
        real = os.write

        def half_then_fail(fd: int, data: bytes | memoryview) -> int:
            real(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.EIO, "simulated I/O failure")

        with monkeypatch.context() as patch:
            patch.setattr(os, "write", half_then_fail)
            with pytest.raises(StoreError, match="simulated I/O failure"):
                store.put(chunk_id, blob)
        # and what a crash (no clean-up at all) leaves: a partial temporary
        final = store.path(chunk_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        (final.parent / f".{final.name}.0badc0ffee00.tmp").write_bytes(blob[: len(blob) // 2])

    return interrupt


def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "local") -> Harness:
    store = LocalStore(tmp_path / name)
    return Harness(
        store,
        lambda: LocalStore(tmp_path / name, writable=False),
        _local_interrupt(store, monkeypatch),
    )


def _http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    backend = LocalStore(tmp_path / "served")
    server = ThreadedChunkServer(backend).start()
    store = HttpStore(server.url, retries=1, backoff=0.01)

    def interrupt(chunk_id: ChunkId, blob: bytes) -> None:
        h = chunk_id.hex()
        head = (
            f"PUT /{h[:4]}/{h}.cacnk HTTP/1.1\r\nHost: {LOOPBACK}\r\n"
            f"Content-Length: {len(blob)}\r\n\r\n"
        ).encode()
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            sock.sendall(head + blob[: len(blob) // 2])
            wait_until(lambda: server.active > 0, "the chunk-server to read the upload")
        # the connection is gone mid-body; wait until the server is done with it
        wait_until(lambda: server.idle, "the chunk-server to drop the cut upload")
        assert not backend.has(chunk_id)

    harness = Harness(store, lambda: HttpStore(server.url, writable=False, retries=0), interrupt)
    harness.closers += [server.stop, store.close]
    return harness


def _s3(bucket: S3Bucket) -> Harness:
    def open_(writable: bool = True) -> S3Store:
        return S3Store(
            bucket.name,
            "some/prefix",
            endpoint_url=bucket.endpoint,
            region=bucket.region,
            access_key=bucket.access_key,
            secret_key=bucket.secret_key,
            addressing_style="path",
            retries=1,
            writable=writable,
        )

    store = open_()

    def interrupt(chunk_id: ChunkId, blob: bytes) -> None:
        # a PUT whose body stops half-way: the server answers once it sees the end
        head = (
            f"PUT /{bucket.name}/{store.key(chunk_id)} HTTP/1.1\r\n"
            f"Host: {LOOPBACK}:{bucket.server.port}\r\nContent-Length: {len(blob)}\r\n\r\n"
        ).encode()
        with socket.create_connection((LOOPBACK, bucket.server.port), timeout=30) as sock:
            sock.sendall(head + blob[: len(blob) // 2])
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass

    harness = Harness(store, lambda: open_(writable=False), interrupt)
    harness.closers.append(store.close)
    return harness


def _sftp(target: SftpTarget, monkeypatch: pytest.MonkeyPatch) -> Harness:
    def open_(writable: bool = True) -> SftpStore:
        return SftpStore(
            target.host,
            target.path + "/store",
            user=target.user,
            port=target.port,
            key_filename=target.key_filename,
            known_hosts=target.known_hosts,
            writable=writable,
            timeout=30,
        )

    store = open_()

    def interrupt(chunk_id: ChunkId, blob: bytes) -> None:
        real = paramiko.SFTPFile.write

        def half_then_drop(self: paramiko.SFTPFile, data: bytes) -> None:
            real(self, data[: len(data) // 2])
            self.flush()
            transport = self.sftp.get_channel().get_transport()
            transport.close()  # the connection dies mid-write
            raise EOFError("simulated dropped connection")

        with monkeypatch.context() as patch:
            patch.setattr(paramiko.SFTPFile, "write", half_then_drop)
            with pytest.raises(StoreError, match="connection broke"):
                store.put(chunk_id, blob)
        directory = Path(target.path) / "store" / chunk_id.hex()[:4]
        leftovers = [p.name for p in directory.iterdir()]
        assert leftovers, "the cut write should have left a temporary"
        assert all(n.startswith(".") and n.endswith(".tmp") for n in leftovers), leftovers

    harness = Harness(store, lambda: open_(writable=False), interrupt)
    harness.closers.append(store.close)
    return harness


def _chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    (tmp_path / "first").mkdir()
    first = LocalStore(tmp_path / "first", writable=False)
    second = LocalStore(tmp_path / "second")
    store = ChainStore([first, second])
    return Harness(
        store,
        lambda: ChainStore([first, LocalStore(tmp_path / "second", writable=False)]),
        _local_interrupt(second, monkeypatch),
    )


def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    cache = LocalStore(tmp_path / "cache")
    remote = LocalStore(tmp_path / "remote")
    store = CacheStore(cache, remote)

    def interrupt(chunk_id: ChunkId, blob: bytes) -> None:
        _local_interrupt(remote, monkeypatch)(chunk_id, blob)
        assert not cache.has(chunk_id)

    return Harness(
        store,
        lambda: CacheStore(cache, LocalStore(tmp_path / "remote", writable=False)),
        interrupt,
    )


@pytest.fixture(params=KINDS)
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    kind = request.param
    if kind == "local":
        made = _local(tmp_path, monkeypatch)
    elif kind == "http":
        made = _http(tmp_path, monkeypatch)
    elif kind == "s3":
        made = _s3(request.getfixturevalue("s3_bucket"))
    elif kind == "sftp":
        made = _sftp(request.getfixturevalue("sftp_target"), monkeypatch)
    elif kind == "chain":
        made = _chain(tmp_path, monkeypatch)
    else:
        made = _cache(tmp_path, monkeypatch)
    try:
        yield made
    finally:
        made.close()


# -- the contract -------------------------------------------------------------------------


def test_put_get_has_remove(harness: Harness) -> None:
    store = harness.store
    chunk_id, blob, data = chunk()
    assert not store.has(chunk_id)
    store.put(chunk_id, blob)
    assert store.has(chunk_id)
    assert store.get(chunk_id) == blob
    assert fetch_chunk(store, chunk_id) == data
    assert store.size(chunk_id) == len(blob)
    store.put(chunk_id, blob)  # again: nothing changes
    assert store.get(chunk_id) == blob
    store.remove(chunk_id)
    assert not store.has(chunk_id)
    store.remove(chunk_id)  # not there: not an error
    assert ids_of(store) == set()


def test_a_missing_chunk_is_named(harness: Harness) -> None:
    chunk_id, _, _ = chunk()
    with pytest.raises(ChunkMissing) as caught:
        harness.store.get(chunk_id)
    assert caught.value.chunk_id == chunk_id.hex()
    assert chunk_id.hex() in str(caught.value)
    with pytest.raises(ChunkMissing):
        harness.store.size(chunk_id)


def test_ids_lists_every_chunk_once(harness: Harness) -> None:
    made = {chunk(size=100 + i)[0:2] for i in range(40)}
    for chunk_id, blob in made:
        harness.store.put(chunk_id, blob)
    listed = list(harness.store.ids())
    assert len(listed) == len(made)
    assert set(listed) == {chunk_id for chunk_id, _ in made}
    assert all(isinstance(i, ChunkId) for i in listed)


def test_a_read_only_store_refuses_writes(harness: Harness) -> None:
    chunk_id, blob, _ = chunk()
    harness.store.put(chunk_id, blob)
    other_id, other_blob, _ = chunk()
    reader = harness.read_only()
    try:
        assert not reader.writable
        with pytest.raises(StoreReadOnly):
            reader.put(other_id, other_blob)
        with pytest.raises(StoreReadOnly):
            reader.remove(chunk_id)
        assert reader.get(chunk_id) == blob
        assert reader.has(chunk_id)
        assert not reader.has(other_id)
    finally:
        reader.close()
    assert harness.store.has(chunk_id)


def test_eight_threads_put_the_same_chunk(harness: Harness) -> None:
    chunk_id, blob, _ = chunk(size=64 * 1024)
    threads(8, lambda _: harness.store.put(chunk_id, blob))
    assert harness.store.get(chunk_id) == blob
    assert ids_of(harness.store) == {chunk_id}


def test_eight_threads_put_and_get_different_chunks(harness: Harness) -> None:
    made = [[chunk(size=2000 + 97 * i + j)[0:2] for j in range(6)] for i in range(8)]

    def work(i: int) -> None:
        for chunk_id, blob in made[i]:
            harness.store.put(chunk_id, blob)
        for chunk_id, blob in made[i]:
            assert harness.store.get(chunk_id) == blob

    threads(8, work)
    expected = {chunk_id for row in made for chunk_id, _ in row}
    assert ids_of(harness.store) == expected
    threads(8, lambda i: [harness.store.get(c) for c, _ in made[(i + 1) % 8]] and None)


def test_a_big_chunk(harness: Harness) -> None:
    chunk_id, blob, data = chunk(size=6 * 1024 * 1024)  # random: zstd cannot shrink it
    assert len(blob) > 6 * 1024 * 1024
    harness.store.put(chunk_id, blob)
    assert harness.store.get(chunk_id) == blob
    assert fetch_chunk(harness.store, chunk_id) == data


@pytest.mark.parametrize("compression", ["gzip", "xz"])
def test_other_compressions_are_kept_as_they_are(
    harness: Harness, compression: Compression
) -> None:
    chunk_id, blob, data = chunk(b"casync --compression " * 500, compression=compression)
    harness.store.put(chunk_id, blob)
    assert harness.store.get(chunk_id) == blob
    assert fetch_chunk(harness.store, chunk_id) == data


def test_an_interrupted_write_leaves_no_partial_chunk(harness: Harness) -> None:
    chunk_id, blob, _ = chunk(size=512 * 1024)
    harness.interrupt(chunk_id, blob)
    assert not harness.store.has(chunk_id)
    with pytest.raises(ChunkMissing):
        harness.store.get(chunk_id)
    assert chunk_id not in ids_of(harness.store)
    harness.store.put(chunk_id, blob)  # and the store still takes it whole
    assert harness.store.get(chunk_id) == blob


def test_errors_name_the_store(harness: Harness) -> None:
    assert harness.store.location
    assert str(harness.store) == harness.store.location
    reader = harness.read_only()
    try:
        with pytest.raises(StoreReadOnly) as caught:
            reader.put(*chunk()[0:2])
        assert caught.value.store
    finally:
        reader.close()
