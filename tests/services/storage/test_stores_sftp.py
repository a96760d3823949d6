"""The SFTP store against OpenSSH's sshd: host keys, logins, layout, reconnects, renames."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import paramiko
import pytest

from aria_actors.services.storage.errors import ChunkMissing, StoreError
from aria_actors.services.storage.stores.chain import open_store
from aria_actors.services.storage.stores.sftp import SftpStore
from tests.servers._util import free_port
from tests.servers.fixtures import SftpTarget

from .stores_support import chunk, threads

pytestmark = pytest.mark.integration


def sftp(target: SftpTarget, path: str | None = None, **options: object) -> SftpStore:
    settings: dict[str, object] = {
        "user": target.user,
        "port": target.port,
        "key_filename": target.key_filename,
        "known_hosts": target.known_hosts,
        "timeout": 30,
    }
    settings.update(options)
    return SftpStore(target.host, path or target.path, **settings)  # type: ignore[arg-type]


def new_key(directory: Path, name: str) -> Path:
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def test_casyncs_layout_on_the_server(sftp_target: SftpTarget) -> None:
    store = sftp(sftp_target)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    h = chunk_id.hex()
    on_disk = Path(sftp_target.path) / h[:4] / f"{h}.cacnk"
    assert on_disk.read_bytes() == blob
    assert [p.name for p in on_disk.parent.iterdir()] == [on_disk.name]  # no temporary left
    assert store.size(chunk_id) == len(blob)
    assert (
        store.location
        == f"sftp://{sftp_target.user}@127.0.0.1:{sftp_target.port}{sftp_target.path}"
    )
    store.close()


def test_a_missing_root_is_made(sftp_target: SftpTarget) -> None:
    root = f"{sftp_target.path}/deep/er/store"
    store = sftp(sftp_target, root)
    assert Path(root).is_dir()
    store.put(*chunk()[0:2])
    store.close()


def test_a_missing_root_is_an_error_without_create(sftp_target: SftpTarget) -> None:
    for options in ({"create": False}, {"writable": False}):
        with pytest.raises(StoreError, match="does not exist"):
            sftp(sftp_target, f"{sftp_target.path}/nope", **options)
    Path(sftp_target.path, "file").write_text("x")
    with pytest.raises(StoreError, match="is not a directory"):
        sftp(sftp_target, f"{sftp_target.path}/file")


def test_leftover_temporaries_are_not_chunks(sftp_target: SftpTarget) -> None:
    store = sftp(sftp_target)
    chunk_id, blob, _ = chunk()
    h = chunk_id.hex()
    directory = Path(sftp_target.path) / h[:4]
    directory.mkdir()
    (directory / f".{h}.cacnk.abcdef012345.tmp").write_bytes(blob[:10])
    (directory / "README").write_text("not a chunk")
    assert not store.has(chunk_id)
    with pytest.raises(ChunkMissing):
        store.get(chunk_id)
    assert list(store.ids()) == []
    store.put(chunk_id, blob)
    assert list(store.ids()) == [chunk_id]


def test_an_unknown_host_key_is_refused(sftp_target: SftpTarget, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(StoreError, match=r"host key of 127\.0\.0\.1:\d+ .* is not in") as caught:
        sftp(sftp_target, known_hosts=str(empty))
    assert str(empty) in str(caught.value)
    # the user's own known_hosts does not know a server on a random port either
    with pytest.raises(StoreError, match=r"is not in ~/\.ssh/known_hosts"):
        sftp(sftp_target, known_hosts=None)
    store = sftp(sftp_target, known_hosts=str(empty), verify_host_key=False)
    store.close()


def test_a_changed_host_key_is_refused(sftp_target: SftpTarget, tmp_path: Path) -> None:
    other = new_key(tmp_path, "other_host_key")
    public = other.with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sftp_target.port} {public[0]} {public[1]}\n")
    with pytest.raises(StoreError, match="does not match known_hosts"):
        sftp(sftp_target, known_hosts=str(known))


def test_a_key_the_server_does_not_know_is_refused(sftp_target: SftpTarget, tmp_path: Path) -> None:
    stranger = new_key(tmp_path, "stranger")
    with pytest.raises(StoreError, match=r"authentication of .* failed"):
        sftp(sftp_target, key_filename=str(stranger))
    with pytest.raises(StoreError, match=r"authentication of nobody@.* failed"):
        sftp(sftp_target, user="nobody")


def test_a_server_that_is_down_is_named(sftp_target: SftpTarget) -> None:
    port = free_port()
    with pytest.raises(StoreError, match=rf"cannot connect to 127\.0\.0\.1:{port}") as caught:
        sftp(sftp_target, port=port)
    assert caught.value.store.startswith("sftp://")


def test_a_dropped_connection_is_made_again(sftp_target: SftpTarget) -> None:
    store = sftp(sftp_target, channels=2)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    assert store._client is not None
    transport = store._client.get_transport()
    assert transport is not None
    transport.close()  # the server, the network or a firewall cut it
    assert store.get(chunk_id) == blob
    other_id, other_blob, _ = chunk()
    store.put(other_id, other_blob)
    assert sorted(store.ids()) == sorted([chunk_id, other_id])
    store.close()


def test_more_threads_than_channels(sftp_target: SftpTarget) -> None:
    store = sftp(sftp_target, channels=2)
    made = [chunk(size=1000 + i)[0:2] for i in range(24)]
    threads(8, lambda i: [store.put(*c) for c in made[i::8]] and None)
    assert set(store.ids()) == {c for c, _ in made}
    store.close()


def test_a_server_without_posix_rename(
    sftp_target: SftpTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(self: paramiko.SFTPClient, old: str, new: str) -> None:
        raise OSError("Operation unsupported")

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", unsupported)
    store = sftp(sftp_target)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    assert store.get(chunk_id) == blob
    assert store._posix_rename is False
    # a plain rename refuses to replace: a chunk that appeared meanwhile is kept
    h = chunk_id.hex()
    final = Path(sftp_target.path) / h[:4] / f"{h}.cacnk"
    real_stat = paramiko.SFTPClient.stat
    calls = {"n": 0}

    def stat_hiding_it_once(self: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes:
        calls["n"] += 1
        if calls["n"] == 1 and path.endswith(".cacnk"):
            raise FileNotFoundError(path)
        return real_stat(self, path)

    monkeypatch.setattr(paramiko.SFTPClient, "stat", stat_hiding_it_once)
    store.put(chunk_id, blob)
    assert final.read_bytes() == blob
    assert sorted(os.listdir(final.parent)) == [final.name]
    store.close()


def test_open_store_with_an_sftp_url(sftp_target: SftpTarget) -> None:
    store = open_store(
        sftp_target.url + "/via-url",
        key_filename=sftp_target.key_filename,
        known_hosts=sftp_target.known_hosts,
    )
    assert isinstance(store, SftpStore)
    assert (store.user, store.port) == (sftp_target.user, sftp_target.port)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    assert (Path(sftp_target.path) / "via-url" / chunk_id.hex()[:4]).is_dir()
    store.close()


def test_a_closed_store_says_so(sftp_target: SftpTarget) -> None:
    store = sftp(sftp_target)
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.get(chunk()[0])
