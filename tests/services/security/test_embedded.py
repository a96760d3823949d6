"""The embedded secret store: its operations and errors, the file on disk, data keys."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aria_actors.services.security import embedded
from aria_actors.services.security.api import (
    DataKeys,
    SecretNotFound,
    SecretStore,
    SecretsUnavailable,
    StoreCorrupt,
    VersionConflict,
)
from aria_actors.services.security.embedded import HEADER, EmbeddedStore, derive_key

from .conftest import exists, mode, names, read, write

BAD_PATHS = ["", "/a", "a/", "a//b", "a/../b", "./a", "a b", "a\nb", "é", "a/b?", "x" * 513]


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "secrets.bin"


@pytest.fixture
async def store(file: Path, key: bytes) -> AsyncIterator[EmbeddedStore]:
    async with EmbeddedStore(file, key) as opened:
        yield opened


async def reopened(file: Path, key: bytes, max_versions: int = 10) -> EmbeddedStore:
    fresh = EmbeddedStore(file, key, max_versions=max_versions)
    await fresh.open()
    return fresh


async def snapshot(store: EmbeddedStore) -> dict[str, Any]:
    """Everything a store tells about its secrets, every kept version's value included."""
    state: dict[str, Any] = {}
    for path in await store.list():
        meta = await store.metadata(path)
        values: dict[int, dict[str, str] | None] = {}
        for version in meta.versions:
            try:
                values[version.version] = (await store.get(path, version.version)).data
            except SecretNotFound:
                values[version.version] = None
        state[path] = (msgspec.to_builtins(meta), values)
    return state


# -- the protocol -------------------------------------------------------------------------


async def test_it_is_a_secret_store_and_a_data_key_source(store: EmbeddedStore) -> None:
    assert isinstance(store, SecretStore)
    assert isinstance(store, DataKeys)
    assert store.backend == "embedded"


def test_the_constructor_checks_its_arguments(file: Path, key: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        EmbeddedStore(file, key[:16])
    with pytest.raises(TypeError, match="bytes"):
        EmbeddedStore(file, key.hex())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        EmbeddedStore(file, key, max_versions=0)


async def test_a_missing_file_is_an_empty_store_created_by_the_first_put(
    file: Path, key: bytes
) -> None:
    async with EmbeddedStore(file, key) as store:
        assert await store.list() == []
        assert (await store.health()).ok
        with pytest.raises(SecretNotFound, match="no secret at 'a'"):
            await store.get("a")
        assert not exists(file)
        await store.put("a", {"k": "v"})
        assert exists(file)
    assert mode(file) == 0o600


async def test_operations_open_the_store_on_first_use(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key) as store:
        await store.put("a", {"k": "v"})
    lazy = EmbeddedStore(file, key)
    assert (await lazy.get("a")).data == {"k": "v"}
    await lazy.close()


# -- put and get --------------------------------------------------------------------------


async def test_put_makes_versions_and_get_reads_them(store: EmbeddedStore) -> None:
    assert await store.put("app/db", {"user": "u", "password": "one"}) == 1
    assert await store.put("app/db", {"user": "u", "password": "two"}) == 2
    current = await store.get("app/db")
    assert (current.path, current.version, current.data) == (
        "app/db",
        2,
        {"user": "u", "password": "two"},
    )
    assert (await store.get("app/db", 1)).data == {"user": "u", "password": "one"}
    assert (await store.get("app/db", 2)).data == current.data
    assert "two" not in repr(current)


async def test_values_are_copied_in_and_out(store: EmbeddedStore) -> None:
    data = {"k": "v"}
    await store.put("a", data)
    data["k"] = "changed"
    read = await store.get("a")
    read.data["k"] = "mutated"
    assert (await store.get("a")).data == {"k": "v"}


async def test_an_empty_mapping_and_unicode_are_values(store: EmbeddedStore) -> None:
    await store.put("a", {})
    await store.put("b", {"ключ": "значение ✓", "nul": "a\x00b"})
    assert (await store.get("a")).data == {}
    assert (await store.get("b")).data == {"ключ": "значение ✓", "nul": "a\x00b"}


async def test_get_of_a_missing_version_says_why(store: EmbeddedStore) -> None:
    await store.put("a", {"k": "v"})
    with pytest.raises(SecretNotFound, match="'a' has no version 2 \\(the current one is 1\\)"):
        await store.get("a", 2)
    with pytest.raises(SecretNotFound, match="no secret at 'b'") as caught:
        await store.get("b")
    assert caught.value.path == "b"


@pytest.mark.parametrize("version", [0, -1])
async def test_version_numbers_start_at_one(store: EmbeddedStore, version: int) -> None:
    await store.put("a", {"k": "v"})
    with pytest.raises(ValueError, match="start at 1"):
        await store.get("a", version)


async def test_a_version_is_an_int(store: EmbeddedStore) -> None:
    await store.put("a", {"k": "v"})
    with pytest.raises(TypeError, match="int"):
        await store.get("a", "1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="int"):
        await store.get("a", True)


@pytest.mark.parametrize("bad", BAD_PATHS)
async def test_every_operation_checks_the_path(store: EmbeddedStore, bad: str) -> None:
    operations: list[Callable[[], Any]] = [
        lambda: store.get(bad),
        lambda: store.put(bad, {"k": "v"}),
        lambda: store.delete(bad),
        lambda: store.destroy_versions(bad, [1]),
        lambda: store.metadata(bad),
    ]
    if bad not in ("", "a/"):  # list("") lists all; a trailing "/" is ignored
        operations.append(lambda: store.list(bad))
    for operation in operations:
        with pytest.raises(ValueError, match="invalid secret path"):
            await operation()
    assert not exists(store.path)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ([("k", "v")], TypeError, "must be a mapping of str to str, not list"),
        ({"k": 1}, TypeError, "the value of 'k' must be a str, not int"),
        ({"k": b"v"}, TypeError, "the value of 'k' must be a str, not bytes"),
        ({1: "v"}, TypeError, "keys must be str, not int"),
        ({"": "v"}, ValueError, "an empty key"),
        ({"k": "\udc80"}, ValueError, "not valid Unicode"),
        ({"\ud800": "v"}, ValueError, "not valid Unicode"),
    ],
)
async def test_values_must_map_str_to_str(
    store: EmbeddedStore, data: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await store.put("a", data)
    assert await store.list() == []


async def test_a_bad_value_is_not_shown_in_the_error(store: EmbeddedStore) -> None:
    with pytest.raises(TypeError) as caught:
        await store.put("a", {"password": 123456789})  # type: ignore[dict-item]
    assert "123456789" not in str(caught.value)


# -- versions, cas, delete, destroy ------------------------------------------------------


async def test_old_versions_are_dropped_beyond_max_versions(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key, max_versions=3) as store:
        for n in range(1, 6):
            assert await store.put("a", {"n": str(n)}) == n
        meta = await store.metadata("a")
        assert meta.current_version == 5
        assert [v.version for v in meta.versions] == [3, 4, 5]
        with pytest.raises(SecretNotFound, match="version 2 of secret 'a' was dropped"):
            await store.get("a", 2)
        assert (await store.get("a", 3)).data == {"n": "3"}
        assert await store.put("a", {"n": "6"}) == 6  # numbers are never reused
    again = await reopened(file, key, max_versions=3)
    assert [v.version for v in (await again.metadata("a")).versions] == [4, 5, 6]


async def test_check_and_set(store: EmbeddedStore) -> None:
    assert await store.put("a", {"n": "1"}, cas=0) == 1
    with pytest.raises(VersionConflict, match="expected version 0, but the current one is 1"):
        await store.put("a", {"n": "x"}, cas=0)
    assert await store.put("a", {"n": "2"}, cas=1) == 2
    with pytest.raises(VersionConflict, match="expected version 1") as caught:
        await store.put("a", {"n": "x"}, cas=1)
    assert caught.value.path == "a"
    with pytest.raises(VersionConflict, match="does not exist"):
        await store.put("b", {"n": "x"}, cas=3)
    with pytest.raises(ValueError, match="cas"):
        await store.put("a", {"n": "x"}, cas=-1)
    assert (await store.get("a")).data == {"n": "2"}
    assert await store.list() == ["a"]


async def test_a_refused_put_does_not_write_the_file(store: EmbeddedStore) -> None:
    await store.put("a", {"n": "1"})
    before = read(store.path)
    with pytest.raises(VersionConflict):
        await store.put("a", {"n": "x"}, cas=0)
    assert read(store.path) == before


async def test_delete_removes_every_version_and_the_metadata(store: EmbeddedStore) -> None:
    await store.put("a", {"n": "1"})
    await store.put("a", {"n": "2"})
    await store.delete("a")
    with pytest.raises(SecretNotFound):
        await store.get("a")
    with pytest.raises(SecretNotFound):
        await store.get("a", 1)
    with pytest.raises(SecretNotFound):
        await store.metadata("a")
    with pytest.raises(SecretNotFound, match="no secret at 'a'"):
        await store.delete("a")
    assert await store.list() == []
    assert await store.put("a", {"n": "again"}, cas=0) == 1


async def test_destroy_wipes_values_and_keeps_metadata(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key) as store:
        for n in (1, 2, 3):
            await store.put("a", {"n": f"value-{n}"})
        await store.destroy_versions("a", [1, 3])
        with pytest.raises(SecretNotFound, match="version 1 of secret 'a' was destroyed"):
            await store.get("a", 1)
        with pytest.raises(SecretNotFound, match="version 3 of secret 'a' was destroyed"):
            await store.get("a")
        assert (await store.get("a", 2)).data == {"n": "value-2"}
        meta = await store.metadata("a")
        assert [(v.version, v.destroyed) for v in meta.versions] == [
            (1, True),
            (2, False),
            (3, True),
        ]
        assert meta.current_version == 3
        assert meta.updated >= meta.created
        before = read(file)
        await store.destroy_versions("a", [1])  # already destroyed: nothing to write
        await store.destroy_versions("a", [])
        assert read(file) == before
        with pytest.raises(SecretNotFound, match="has no version 4"):
            await store.destroy_versions("a", [2, 4])
        assert (await store.get("a", 2)).data == {"n": "value-2"}
        with pytest.raises(SecretNotFound):
            await store.destroy_versions("b", [1])
        with pytest.raises(ValueError, match="start at 1"):
            await store.destroy_versions("a", [0])
        assert await store.put("a", {"n": "value-4"}) == 4
    again = await reopened(file, key)
    assert [v.destroyed for v in (await again.metadata("a")).versions] == [
        True,
        False,
        True,
        False,
    ]
    with pytest.raises(SecretNotFound, match="destroyed"):
        await again.get("a", 3)


async def test_destroying_a_dropped_version_is_a_no_op(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key, max_versions=2) as store:
        for n in (1, 2, 3):
            await store.put("a", {"n": str(n)})
        await store.destroy_versions("a", [1])
        assert [v.destroyed for v in (await store.metadata("a")).versions] == [False, False]


async def test_list_matches_whole_path_segments(store: EmbeddedStore) -> None:
    for path in ["b/x", "a/bc", "a/b/c", "a", "a/b", "a/b/c/d", "ab"]:
        await store.put(path, {"k": "v"})
    assert await store.list() == ["a", "a/b", "a/b/c", "a/b/c/d", "a/bc", "ab", "b/x"]
    assert await store.list("") == await store.list()
    assert await store.list("a/b") == ["a/b", "a/b/c", "a/b/c/d"]
    assert await store.list("a/b/") == ["a/b", "a/b/c", "a/b/c/d"]
    assert await store.list("a") == ["a", "a/b", "a/b/c", "a/b/c/d", "a/bc"]
    assert await store.list("a/b/c/d") == ["a/b/c/d"]
    assert await store.list("b") == ["b/x"]
    assert await store.list("zz") == []


async def test_metadata_describes_versions_without_values(store: EmbeddedStore) -> None:
    await store.put("a", {"password": "hunter2"})
    await store.put("a", {"password": "hunter3"})
    meta = await store.metadata("a")
    assert meta.path == "a"
    assert meta.current_version == 2
    assert [v.version for v in meta.versions] == [1, 2]
    assert meta.created <= meta.versions[1].created == meta.updated
    assert not any(v.deleted or v.destroyed for v in meta.versions)
    assert "hunter" not in repr(msgspec.to_builtins(meta))


# -- the file -----------------------------------------------------------------------------


async def test_reloading_from_disk_gives_the_same_state(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key, max_versions=3) as store:
        for n in range(5):
            await store.put("a/one", {"n": str(n)})
        await store.put("a/two", {"x": "y", "z": "w"})
        await store.put("b", {"k": "v"})
        await store.destroy_versions("a/one", [4])
        await store.put("gone", {"k": "v"})
        await store.delete("gone")
        before = await snapshot(store)
    assert await snapshot(await reopened(file, key, max_versions=3)) == before


async def test_the_file_holds_no_value_key_or_path_in_clear(store: EmbeddedStore) -> None:
    value = "correct-horse-battery-staple-" + secrets.token_hex(8)
    await store.put("aria_data/postgres", {"postgres_password": value})
    await store.put("aria_data/postgres", {"postgres_password": value + "-2"})
    content = read(store.path)
    assert content.startswith(HEADER)
    for clear in (value, "postgres_password", "aria_data/postgres", "versions"):
        assert clear.encode() not in content
        assert clear.encode("utf-16-le") not in content


async def test_every_write_uses_a_new_nonce(store: EmbeddedStore) -> None:
    nonces = set()
    for n in range(5):
        await store.put("a", {"n": "same"})
        nonces.add(read(store.path)[len(HEADER) : len(HEADER) + 12])
        del n
    assert len(nonces) == 5


def flip(offset: int) -> Callable[[bytes], bytes]:
    def change(blob: bytes) -> bytes:
        index = offset % len(blob)
        return blob[:index] + bytes([blob[index] ^ 0x01]) + blob[index + 1 :]

    return change


CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "flipped-magic": (flip(0), "bad magic header"),
    "flipped-format": (flip(7), "format version"),
    "flipped-nonce": (flip(9), "does not decrypt"),
    "flipped-ciphertext": (flip(30), "does not decrypt"),
    "flipped-tag": (flip(-1), "does not decrypt"),
    "truncated-by-one": (lambda blob: blob[:-1], "does not decrypt"),
    "truncated-to-header": (lambda blob: blob[:10], "truncated"),
    "empty": (lambda blob: b"", "truncated"),
    "appended": (lambda blob: blob + b"\x00", "does not decrypt"),
    "wrong-magic": (lambda blob: b"NOTASEC" + blob[7:], "bad magic header"),
    "text-file": (lambda blob: b"user=admin\npassword=x\n" * 3, "bad magic header"),
}


async def assert_refused_and_untouched(file: Path, key: bytes, match: str) -> None:
    """Opening raises StoreCorrupt naming the file; nothing afterwards touches it."""
    before = read(file)
    store = EmbeddedStore(file, key)
    with pytest.raises(StoreCorrupt, match=match) as caught:
        await store.open()
    assert str(file) in str(caught.value)
    attempts: list[Callable[[], Any]] = [
        lambda: store.put("a", {"k": "v"}),
        lambda: store.put("new", {"k": "v"}, cas=0),
        lambda: store.delete("a"),
        lambda: store.destroy_versions("a", [1]),
        lambda: store.get("a"),
        lambda: store.list(),
        lambda: store.metadata("a"),
        lambda: store.generate_data_key(),
        lambda: store.open(),
    ]
    for attempt in attempts:
        with pytest.raises(StoreCorrupt, match="refuses to work"):
            await attempt()
    health = await store.health()
    assert not health.ok
    assert str(file) in health.detail
    await store.close()
    assert read(file) == before
    assert names(file.parent) == [file.name]


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
async def test_a_corrupt_file_is_refused_at_open_and_never_overwritten(
    file: Path, key: bytes, corruption: str
) -> None:
    async with EmbeddedStore(file, key) as store:
        await store.put("a", {"k": "v"})
        await store.put("b", {"k": "v"})
    change, match = CORRUPTIONS[corruption]
    write(file, change(read(file)))
    await assert_refused_and_untouched(file, key, match)


async def test_a_wrong_key_is_refused_and_the_file_kept(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key) as store:
        await store.put("a", {"k": "v"})
    await assert_refused_and_untouched(file, secrets.token_bytes(32), "wrong master key")
    assert (await (await reopened(file, key)).get("a")).data == {"k": "v"}


async def test_a_file_that_decrypts_but_does_not_parse_is_corrupt(file: Path, key: bytes) -> None:
    nonce = secrets.token_bytes(12)
    cipher = AESGCM(derive_key(key, b"aria-security/embedded-store/file/v1"))
    write(file, HEADER + nonce + cipher.encrypt(nonce, b"\xc1 not msgpack", HEADER))
    await assert_refused_and_untouched(file, key, "decrypts but does not parse")


async def test_a_document_of_the_wrong_shape_is_corrupt(file: Path, key: bytes) -> None:
    nonce = secrets.token_bytes(12)
    cipher = AESGCM(derive_key(key, b"aria-security/embedded-store/file/v1"))
    plain = msgspec.msgpack.encode({"a": {"created": 1.0, "current": "one"}})
    write(file, HEADER + nonce + cipher.encrypt(nonce, plain, HEADER))
    await assert_refused_and_untouched(file, key, "does not parse")


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"a": {"created": 1.0, "updated": 1.0, "current": 2, "versions": []}}, "not the last"),
        (
            {
                "a": {
                    "created": 1.0,
                    "updated": 1.0,
                    "current": 2,
                    "versions": [
                        {"version": 2, "created": 1.0, "data": {}},
                        {"version": 2, "created": 1.0, "data": {}},
                    ],
                }
            },
            "not increasing",
        ),
        (
            {
                "a": {
                    "created": 1.0,
                    "updated": 1.0,
                    "current": 1,
                    "versions": [{"version": 1, "created": 1.0, "data": None}],
                }
            },
            "disagree",
        ),
        (
            {
                "../a": {
                    "created": 1.0,
                    "updated": 1.0,
                    "current": 1,
                    "versions": [{"version": 1, "created": 1.0, "data": {}}],
                }
            },
            "invalid secret path",
        ),
    ],
)
async def test_a_document_that_breaks_the_invariants_is_corrupt(
    file: Path, key: bytes, document: dict[str, Any], problem: str
) -> None:
    nonce = secrets.token_bytes(12)
    cipher = AESGCM(derive_key(key, b"aria-security/embedded-store/file/v1"))
    plain = msgspec.msgpack.encode(document)
    write(file, HEADER + nonce + cipher.encrypt(nonce, plain, HEADER))
    await assert_refused_and_untouched(file, key, f"inconsistent: .*{problem}")


async def test_a_file_changed_on_disk_is_not_overwritten(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key) as store:
        await store.put("a", {"k": "v"})
        async with EmbeddedStore(file.with_name("other.bin"), key) as other:
            await other.put("x", {"k": "v"})
        os.replace(file.with_name("other.bin"), file)  # a restored backup, say
        replaced = read(file)
        with pytest.raises(StoreCorrupt, match="changed on disk"):
            await store.put("a", {"k": "w"})
        with pytest.raises(StoreCorrupt, match="refuses to work"):
            await store.put("a", {"k": "w"})
        assert read(file) == replaced
    assert await (await reopened(file, key)).list() == ["x"]


async def test_a_crash_before_the_replace_leaves_the_old_file(
    file: Path, key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with EmbeddedStore(file, key) as store:
        await store.put("a", {"k": "old"})
        before = read(file)

        def crash(source: object, target: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(SecretsUnavailable, match=r"No space left.*previous file is intact"):
            await store.put("a", {"k": "new"})
        with pytest.raises(SecretsUnavailable):
            await store.put("b", {"k": "new"})
        monkeypatch.undo()
        assert read(file) == before
        assert names(file.parent) == [file.name]  # no temp left
        # Memory did not change either: the failed puts never happened.
        assert (await store.get("a")).data == {"k": "old"}
        assert await store.list() == ["a"]
        assert await store.put("a", {"k": "newer"}) == 2
    again = await reopened(file, key)
    assert (await again.get("a")).data == {"k": "newer"}
    assert (await again.get("a", 1)).data == {"k": "old"}


async def test_a_temp_file_left_by_a_crash_is_ignored(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key) as store:
        await store.put("a", {"k": "v"})
    (file.parent / f".{file.name}.0123456789abcdef.tmp").write_bytes(b"half a file")
    assert (await (await reopened(file, key)).get("a")).data == {"k": "v"}


async def test_an_unreadable_file_is_unavailable_not_corrupt(tmp_path: Path, key: bytes) -> None:
    store = EmbeddedStore(tmp_path, key)  # a directory: reading it fails
    with pytest.raises(SecretsUnavailable, match="cannot read the secret store"):
        await store.open()
    assert not (await store.health()).ok


async def test_close_refuses_later_operations(file: Path, key: bytes) -> None:
    store = await reopened(file, key)
    await store.put("a", {"k": "v"})
    await store.close()
    await store.close()
    with pytest.raises(SecretsUnavailable, match="closed"):
        await store.get("a")
    with pytest.raises(SecretsUnavailable, match="closed"):
        await store.put("a", {"k": "v"})
    assert not (await store.health()).ok


# -- data keys ----------------------------------------------------------------------------


async def test_data_keys_round_trip(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key) as store:
        plain, wrapped = await store.generate_data_key()
        other, _ = await store.generate_data_key()
        assert len(plain) == 32
        assert plain != other
        assert len(wrapped) == embedded.WRAPPED_DATA_KEY_SIZE
        assert wrapped[0] == embedded.DATA_KEY_FORMAT
        assert plain not in wrapped
        assert await store.unwrap_data_key(wrapped) == plain
        assert await store.unwrap_data_key(bytearray(wrapped)) == plain  # type: ignore[arg-type]
    # The same master key unwraps it later; the data keys do not need the file.
    assert await (await reopened(file, key)).unwrap_data_key(wrapped) == plain


@pytest.mark.parametrize("offset", [0, 1, 12, 13, 40, 60])
async def test_a_tampered_data_key_is_detected(store: EmbeddedStore, offset: int) -> None:
    _, wrapped = await store.generate_data_key()
    with pytest.raises(StoreCorrupt):
        await store.unwrap_data_key(flip(offset)(wrapped))


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01" * 60, b"\x01" * 62, b"\x02" * 61])
async def test_a_blob_that_is_not_a_data_key_is_detected(store: EmbeddedStore, blob: bytes) -> None:
    with pytest.raises(StoreCorrupt, match="not a wrapped data key"):
        await store.unwrap_data_key(blob)


async def test_a_data_key_of_another_master_key_is_detected(
    tmp_path: Path, store: EmbeddedStore
) -> None:
    _, wrapped = await store.generate_data_key()
    async with EmbeddedStore(tmp_path / "other", secrets.token_bytes(32)) as other:
        with pytest.raises(StoreCorrupt, match="another master key"):
            await other.unwrap_data_key(wrapped)
    with pytest.raises(TypeError, match="bytes"):
        await store.unwrap_data_key("abc")  # type: ignore[arg-type]


# -- concurrency --------------------------------------------------------------------------


async def test_concurrent_puts_all_land_with_distinct_versions(file: Path, key: bytes) -> None:
    async with EmbeddedStore(file, key, max_versions=100) as store:
        versions = await asyncio.gather(*(store.put("a", {"n": str(n)}) for n in range(60)))
        assert sorted(versions) == list(range(1, 61))
        await asyncio.gather(*(store.put(f"many/{n}", {"n": str(n)}) for n in range(40)))
        assert len(await store.list("many")) == 40
        values = {(await store.get("a", v)).data["n"] for v in versions}
        assert values == {str(n) for n in range(60)}
        before = await snapshot(store)
    assert await snapshot(await reopened(file, key, max_versions=100)) == before


async def test_reads_during_writes_see_whole_states(store: EmbeddedStore) -> None:
    await store.put("a", {"n": "0"})

    async def writer() -> None:
        for n in range(1, 20):
            await store.put("a", {"n": str(n), "m": str(n)})

    async def reader() -> None:
        for _ in range(200):
            secret = await store.get("a")
            assert secret.data.get("m", secret.data["n"]) == secret.data["n"]
            await asyncio.sleep(0)

    await asyncio.gather(writer(), reader(), reader())


async def test_a_cancelled_put_still_lands_and_keeps_the_store_consistent(
    file: Path, key: bytes
) -> None:
    async with EmbeddedStore(file, key, max_versions=100) as store:
        await store.put("a", {"n": "0"})
        tasks = [asyncio.ensure_future(store.put("a", {"n": str(n)})) for n in range(1, 11)]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert await store.put("a", {"n": "last"}) == 12  # every cancelled put landed too
        before = await snapshot(store)
    assert await snapshot(await reopened(file, key, max_versions=100)) == before


# -- a model ------------------------------------------------------------------------------

PATHS = ["a", "a/b", "b/c"]
Model = dict[str, dict[str, Any]]  # path -> {"current": n, "versions": {n: data | None}}


@st.composite
def step(draw: st.DrawFn) -> tuple[Any, ...]:
    """One operation; mostly puts (a quarter of them check-and-set), on few paths."""
    kind = draw(st.sampled_from(["put"] * 6 + ["delete", "destroy", "destroy", "reopen"]))
    path = draw(st.sampled_from(PATHS))
    if kind == "put":
        data = draw(st.dictionaries(st.sampled_from(["u", "p"]), st.text(max_size=3), max_size=2))
        cas = draw(st.integers(0, 6)) if draw(st.integers(0, 3)) == 0 else None
        return ("put", path, data, cas)
    if kind == "destroy":
        return ("destroy", path, draw(st.lists(st.integers(1, 8), max_size=3)))
    if kind == "delete":
        return ("delete", path)
    return ("reopen",)


operations = st.lists(step(), max_size=30)

MAX_VERSIONS = 3


def model_put(model: Model, path: str, data: dict[str, str], cas: int | None) -> int | type:
    entry = model.get(path)
    current = 0 if entry is None else entry["current"]
    if cas is not None and cas != current:
        return VersionConflict
    entry = model.setdefault(path, {"current": 0, "versions": {}})
    entry["current"] = current + 1
    entry["versions"][current + 1] = dict(data)
    for old in sorted(entry["versions"])[:-MAX_VERSIONS]:
        del entry["versions"][old]
    return current + 1


def model_destroy(model: Model, path: str, versions: list[int]) -> type | None:
    entry = model.get(path)
    if entry is None or any(v > entry["current"] for v in versions):
        return SecretNotFound
    for v in versions:
        if v in entry["versions"]:
            entry["versions"][v] = None
    return None


async def agrees(store: EmbeddedStore, model: Model) -> None:
    assert await store.list() == sorted(model)
    for path, entry in model.items():
        meta = await store.metadata(path)
        assert meta.current_version == entry["current"]
        assert [v.version for v in meta.versions] == sorted(entry["versions"])
        for number, data in entry["versions"].items():
            if data is None:
                with pytest.raises(SecretNotFound):
                    await store.get(path, number)
            else:
                assert (await store.get(path, number)).data == data
        current = entry["versions"][entry["current"]]
        if current is None:
            with pytest.raises(SecretNotFound):
                await store.get(path)
        else:
            assert (await store.get(path)).data == current


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=operations)
async def test_the_store_agrees_with_a_dict_model(
    tmp_path: Path, key: bytes, steps: list[tuple[Any, ...]]
) -> None:
    file = tmp_path / uuid.uuid4().hex / "secrets.bin"
    model: Model = {}
    store = await reopened(file, key, max_versions=MAX_VERSIONS)
    try:
        for step in steps:
            if step[0] == "put":
                _, path, data, cas = step
                expected = model_put(model, path, data, cas)
                if expected is VersionConflict:
                    with pytest.raises(VersionConflict):
                        await store.put(path, data, cas=cas)
                else:
                    assert await store.put(path, data, cas=cas) == expected
            elif step[0] == "delete":
                _, path = step
                if path in model:
                    del model[path]
                    await store.delete(path)
                else:
                    with pytest.raises(SecretNotFound):
                        await store.delete(path)
            elif step[0] == "destroy":
                _, path, versions = step
                if model_destroy(model, path, versions) is SecretNotFound:
                    with pytest.raises(SecretNotFound):
                        await store.destroy_versions(path, versions)
                else:
                    await store.destroy_versions(path, versions)
            else:
                await store.close()
                store = await reopened(file, key, max_versions=MAX_VERSIONS)
            await agrees(store, model)
    finally:
        await store.close()
    await agrees(await reopened(file, key, max_versions=MAX_VERSIONS), model)
