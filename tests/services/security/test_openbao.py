"""OpenBaoStore against a real OpenBao dev server: KV v2, transit, token and AppRole auth.

Each test gets its own KV v2 mount (and transit mount) on the session's dev server, so
tests never see each other's secrets. Everything goes through the store's public
methods; the server is driven with the fixture's helpers (root token).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aria_actors.services.security.api import (
    DataKeys,
    SecretNotFound,
    SecretsAccessDenied,
    SecretsError,
    SecretStore,
    SecretsUnavailable,
    StoreCorrupt,
    VersionConflict,
)
from aria_actors.services.security.openbao import OpenBaoSettings, OpenBaoStore, _time
from tests.servers._util import free_port
from tests.servers.openbao import OpenBaoServer

from .support import ONE_LOOP

pytestmark = pytest.mark.integration

RW = '["create", "read", "update", "delete", "list"]'


@dataclass(frozen=True)
class Mounts:
    """A fresh KV v2 mount and a transit mount (with key ``aria``) of this test's own."""

    kv: str
    transit: str


@pytest.fixture
def mounts(openbao: OpenBaoServer) -> Mounts:
    tag = secrets.token_hex(4)
    made = Mounts(kv=f"kv-{tag}", transit=f"transit-{tag}")
    openbao.enable_kv_v2(made.kv)
    openbao.enable_transit(made.transit, key="aria")
    return made


def settings_for(openbao: OpenBaoServer, mounts: Mounts, **overrides: Any) -> OpenBaoSettings:
    fields: dict[str, Any] = {
        "address": openbao.address,
        "mount": mounts.kv,
        "transit_mount": mounts.transit,
        "timeout": 5.0,
    }
    return OpenBaoSettings(**(fields | overrides))


@pytest.fixture
async def store(openbao: OpenBaoServer, mounts: Mounts) -> AsyncIterator[OpenBaoStore]:
    """A store on the root token, given through ``$BAO_TOKEN``."""
    opened = OpenBaoStore(settings_for(openbao, mounts), environ={"BAO_TOKEN": openbao.root_token})
    try:
        yield opened
    finally:
        await opened.close()


def overwrite(path: Path, text: str) -> None:
    path.write_text(text)


def kv_policy(mount: str, capabilities: str = RW) -> str:
    return f'path "{mount}/*" {{ capabilities = {capabilities} }}\n'


async def approle_store(
    openbao: OpenBaoServer,
    mounts: Mounts,
    tmp_path: Path,
    *,
    token_ttl: str = "1h",
    token_max_ttl: str = "4h",
    capabilities: str = RW,
) -> OpenBaoStore:
    role = f"aria-{secrets.token_hex(4)}"
    creds = openbao.enable_approle(
        role,
        kv_policy(mounts.kv, capabilities),
        token_ttl=token_ttl,
        token_max_ttl=token_max_ttl,
    )
    secret_id_file = tmp_path / f"{role}.secret-id"
    secret_id_file.write_text(creds.secret_id + "\n")
    settings = settings_for(
        openbao,
        mounts,
        auth="approle",
        role_id=creds.role_id,
        secret_id_file=str(secret_id_file),
        approle_mount=creds.mount,
    )
    return OpenBaoStore(settings, environ={})


# -- the protocol and KV v2 ---------------------------------------------------------------


async def test_it_is_a_secret_store_and_a_data_key_source(store: OpenBaoStore) -> None:
    assert isinstance(store, SecretStore)
    assert isinstance(store, DataKeys)
    assert store.backend == "openbao"


async def test_put_makes_versions_and_get_reads_them(store: OpenBaoStore) -> None:
    before = time.time()
    assert await store.put("app/db", {"user": "aria", "password": "s3cret-one"}) == 1
    assert await store.put("app/db", {"user": "aria", "password": "s3cret-two"}) == 2

    current = await store.get("app/db")
    assert (current.path, current.version) == ("app/db", 2)
    assert current.data == {"user": "aria", "password": "s3cret-two"}
    assert before - 60 < current.created < time.time() + 60
    assert "s3cret" not in repr(current)

    first = await store.get("app/db", version=1)
    assert (first.version, first.data["password"]) == (1, "s3cret-one")
    assert (await store.get("app/db", version=2)).data == current.data


async def test_an_empty_mapping_and_unicode_are_values(store: OpenBaoStore) -> None:
    await store.put("empty", {})
    assert (await store.get("empty")).data == {}
    await store.put("unicode", {"clé": "välue ✓", "nl": "a\nb"})
    assert (await store.get("unicode")).data == {"clé": "välue ✓", "nl": "a\nb"}


async def test_missing_paths_and_versions_are_not_found(store: OpenBaoStore) -> None:
    with pytest.raises(SecretNotFound) as missing:
        await store.get("no/such/secret")
    assert missing.value.path == "no/such/secret"
    await store.put("one", {"v": "1"})
    with pytest.raises(SecretNotFound):
        await store.get("one", version=7)
    with pytest.raises(SecretNotFound):
        await store.metadata("no/such/secret")
    with pytest.raises(SecretNotFound):
        await store.delete("no/such/secret")


@pytest.mark.parametrize("version", [0, -1])
async def test_version_numbers_start_at_one(store: OpenBaoStore, version: int) -> None:
    """As in the embedded store: a version below 1 is a caller's error.

    BUG: OpenBaoStore.get passes the number to OpenBao as it is, and KV v2 reads
    ``version=0`` as "the current version": get("x", version=0) returns the current
    value instead of raising ValueError (so does -1).
    """
    await store.put("x", {"v": "1"})
    await store.put("x", {"v": "2"})
    with pytest.raises(ValueError, match="version"):
        await store.get("x", version=version)


@pytest.mark.parametrize("bad", ["", "/a", "a/", "a//b", "a/../b", "a b", "é", "x" * 513])
async def test_every_operation_checks_the_path(store: OpenBaoStore, bad: str) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: store.get(bad),
        lambda: store.put(bad, {"a": "b"}),
        lambda: store.delete(bad),
        lambda: store.destroy_versions(bad, [1]),
        lambda: store.metadata(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid secret path"):
            await call()


async def test_values_must_map_str_to_str(store: OpenBaoStore) -> None:
    with pytest.raises(TypeError):
        await store.put("typed", {"n": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        await store.put("typed", [("a", "b")])  # type: ignore[arg-type]
    with pytest.raises(SecretNotFound):
        await store.get("typed")


async def test_check_and_set(store: OpenBaoStore) -> None:
    assert await store.put("cas", {"v": "1"}, cas=0) == 1
    with pytest.raises(VersionConflict) as conflict:
        await store.put("cas", {"v": "again"}, cas=0)  # it exists already
    assert conflict.value.path == "cas"
    with pytest.raises(VersionConflict):
        await store.put("cas", {"v": "stale"}, cas=5)
    assert await store.put("cas", {"v": "2"}, cas=1) == 2
    with pytest.raises(VersionConflict):
        await store.put("cas", {"v": "lost race"}, cas=1)
    assert (await store.get("cas")).data == {"v": "2"}
    with pytest.raises(VersionConflict):
        await store.put("cas/new", {"v": "1"}, cas=3)  # absent: only cas=0 fits


async def test_concurrent_check_and_set_has_one_winner(store: OpenBaoStore) -> None:
    await store.put("race", {"v": "0"})
    results = await asyncio.gather(
        *(store.put("race", {"v": str(n)}, cas=1) for n in range(8)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, int)]
    assert winners == [2]
    assert all(isinstance(r, VersionConflict) for r in results if not isinstance(r, int))


async def test_delete_removes_every_version_and_the_metadata(store: OpenBaoStore) -> None:
    await store.put("gone", {"v": "1"})
    await store.put("gone", {"v": "2"})
    await store.delete("gone")
    for version in (None, 1, 2):
        with pytest.raises(SecretNotFound):
            await store.get("gone", version)
    with pytest.raises(SecretNotFound):
        await store.metadata("gone")
    assert "gone" not in await store.list()
    assert await store.put("gone", {"v": "new"}) == 1  # a new secret starts again at 1


async def test_destroy_wipes_values_and_keeps_metadata(store: OpenBaoStore) -> None:
    for n in range(1, 4):
        await store.put("rotating", {"key": f"value-{n}"})
    await store.destroy_versions("rotating", [1, 2])
    for version in (1, 2):
        with pytest.raises(SecretNotFound):
            await store.get("rotating", version=version)
    assert (await store.get("rotating")).data == {"key": "value-3"}
    meta = await store.metadata("rotating")
    assert meta.current_version == 3
    assert [(v.version, v.destroyed) for v in meta.versions] == [(1, True), (2, True), (3, False)]
    await store.destroy_versions("rotating", [1])  # again: nothing changes
    await store.destroy_versions("rotating", [3])
    with pytest.raises(SecretNotFound):
        await store.get("rotating")


async def test_metadata_describes_versions_without_values(store: OpenBaoStore) -> None:
    before = time.time()
    await store.put("meta", {"v": "1"})
    await store.put("meta", {"v": "2"})
    meta = await store.metadata("meta")
    assert meta.path == "meta"
    assert meta.current_version == 2
    assert [v.version for v in meta.versions] == [1, 2]
    assert not any(v.deleted or v.destroyed for v in meta.versions)
    assert before - 60 < meta.created <= meta.updated < time.time() + 60
    assert meta.versions[0].created <= meta.versions[1].created
    assert "'v'" not in repr(meta)


NESTED = [
    "app",
    "app/db",
    "app/cache/redis",
    "app/cache/memcached",
    "app/cache/deep/er/still",
    "apps/x",
    "other/y",
    "top",
]


async def test_list_walks_nested_folders_by_whole_segments(store: OpenBaoStore) -> None:
    assert await store.list() == []
    for path in NESTED:
        await store.put(path, {"v": path})
    assert await store.list() == sorted(NESTED)
    assert await store.list("app") == [
        "app",
        "app/cache/deep/er/still",
        "app/cache/memcached",
        "app/cache/redis",
        "app/db",
    ]
    assert await store.list("app/cache") == [
        "app/cache/deep/er/still",
        "app/cache/memcached",
        "app/cache/redis",
    ]
    assert await store.list("app/db") == ["app/db"]
    assert await store.list("apps") == ["apps/x"]
    assert await store.list("ap") == []  # whole segments only
    assert await store.list("nothing/here") == []
    with pytest.raises(ValueError, match="invalid secret path"):
        await store.list("a//b")


async def test_list_ignores_a_trailing_slash_like_the_embedded_store(store: OpenBaoStore) -> None:
    """``list("app/")`` is ``list("app")`` on the embedded store (documented there).

    BUG: OpenBaoStore.list calls check_path(prefix) before stripping the slash, so a
    prefix such as "aria_data/" (the form the client docs use for watch prefixes)
    raises ValueError on OpenBao while it works on the embedded store.
    """
    for path in ("app/db", "app/cache/redis", "apps/x"):
        await store.put(path, {"v": "1"})
    assert await store.list("app/") == ["app/cache/redis", "app/db"]


# -- data keys (transit) ------------------------------------------------------------------


async def test_data_keys_round_trip(store: OpenBaoStore) -> None:
    key, wrapped = await store.generate_data_key()
    assert isinstance(key, bytes)
    assert len(key) == 32
    assert isinstance(wrapped, bytes)
    assert key not in wrapped
    assert wrapped.startswith((b"vault:v1:", b"bao:v1:"))
    assert await store.unwrap_data_key(wrapped) == key
    other_key, other_wrapped = await store.generate_data_key()
    assert other_key != key
    assert other_wrapped != wrapped
    assert await store.unwrap_data_key(other_wrapped) == other_key


def forged_keys(wrapped: bytes) -> list[bytes]:
    prefix, _, body = wrapped.rpartition(b":")
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 0x01
    return [
        prefix + b":" + base64.b64encode(bytes(raw)),  # one bit flipped: fails the GCM tag
        prefix + b":" + base64.b64encode(secrets.token_bytes(len(raw))),  # random bytes
        b"vault:v9:" + body,  # a key version that does not exist
        b"not a wrapped key at all",
        b"\xff\xfe\x00 not utf-8",
        b"",
    ]


async def test_a_forged_wrapped_key_is_store_corrupt(store: OpenBaoStore) -> None:
    _, wrapped = await store.generate_data_key()
    for forged in forged_keys(wrapped):
        with pytest.raises(StoreCorrupt):
            await store.unwrap_data_key(forged)


async def test_a_key_wrapped_by_another_transit_key_is_store_corrupt(
    openbao: OpenBaoServer, mounts: Mounts, store: OpenBaoStore
) -> None:
    openbao.create_transit_key("other", mount=mounts.transit)
    other = OpenBaoStore(
        settings_for(openbao, mounts, transit_key="other"),
        environ={"BAO_TOKEN": openbao.root_token},
    )
    try:
        _, wrapped = await other.generate_data_key()
    finally:
        await other.close()
    with pytest.raises(StoreCorrupt):
        await store.unwrap_data_key(wrapped)


async def test_a_missing_transit_engine_is_named_in_the_error(
    openbao: OpenBaoServer, mounts: Mounts
) -> None:
    """Not "no secret in openbao": the transit mount and key, and how to make them."""
    missing = OpenBaoStore(
        settings_for(openbao, mounts, transit_mount="no-such-transit"),
        environ={"BAO_TOKEN": openbao.root_token},
    )
    try:
        with pytest.raises(SecretsError, match="no transit key 'aria'") as caught:
            await missing.generate_data_key()
    finally:
        await missing.close()
    assert not isinstance(caught.value, SecretNotFound)
    assert "bao write -f no-such-transit/keys/aria" in str(caught.value)


# -- token auth ---------------------------------------------------------------------------


async def test_token_from_a_token_file(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(openbao.root_token + "\n")
    store = OpenBaoStore(
        settings_for(openbao, mounts, token_file=str(token_file)),
        environ={"BAO_TOKEN": "not-this-one"},  # the file wins over the environment
    )
    try:
        await store.put("from/file", {"v": "1"})
        assert (await store.get("from/file")).data == {"v": "1"}
    finally:
        await store.close()


@pytest.mark.parametrize("variable", ["BAO_TOKEN", "VAULT_TOKEN"])
async def test_token_from_the_environment(
    openbao: OpenBaoServer, mounts: Mounts, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv("BAO_TOKEN", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    monkeypatch.setenv(variable, openbao.root_token)
    store = OpenBaoStore(settings_for(openbao, mounts))  # reads os.environ
    try:
        await store.put("from/env", {"v": variable})
        assert (await store.get("from/env")).data == {"v": variable}
    finally:
        await store.close()


async def test_no_token_is_access_denied(openbao: OpenBaoServer, mounts: Mounts) -> None:
    store = OpenBaoStore(settings_for(openbao, mounts), environ={})
    try:
        with pytest.raises(SecretsAccessDenied, match="BAO_TOKEN"):
            await store.get("anything")
    finally:
        await store.close()


async def test_a_missing_token_file_is_access_denied(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-token"
    store = OpenBaoStore(settings_for(openbao, mounts, token_file=str(missing)), environ={})
    try:
        with pytest.raises(SecretsAccessDenied, match="no-such-token"):
            await store.get("anything")
    finally:
        await store.close()


async def test_a_wrong_token_is_access_denied_and_health_is_ok(
    openbao: OpenBaoServer, mounts: Mounts
) -> None:
    store = OpenBaoStore(settings_for(openbao, mounts), environ={"BAO_TOKEN": "s.wrong-token"})
    try:
        for call in (
            lambda: store.get("x"),
            lambda: store.put("x", {"a": "b"}),
            lambda: store.list(),
            lambda: store.generate_data_key(),
        ):
            with pytest.raises(SecretsAccessDenied) as denied:
                await call()
            assert "wrong-token" not in str(denied.value)  # the token is never shown
        health = await store.health()
        assert health.ok, health
        assert health.backend == "openbao"
    finally:
        await store.close()


async def test_a_policy_refusal_is_access_denied(
    openbao: OpenBaoServer, mounts: Mounts, store: OpenBaoStore, tmp_path: Path
) -> None:
    await store.put("readonly/x", {"v": "1"})
    reader = await approle_store(openbao, mounts, tmp_path, capabilities='["read", "list"]')
    try:
        assert (await reader.get("readonly/x")).data == {"v": "1"}
        with pytest.raises(SecretsAccessDenied):
            await reader.put("readonly/x", {"v": "2"})
        assert (await reader.get("readonly/x")).data == {"v": "1"}  # and it keeps working
    finally:
        await reader.close()


@ONE_LOOP
async def test_a_token_with_a_lease_is_renewed_before_it_expires(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    openbao.write_policy(f"rw-{mounts.kv}", kv_policy(mounts.kv))
    created = openbao.client().auth.token.create(
        policies=[f"rw-{mounts.kv}"], ttl="2s", renewable=True
    )
    token = created["auth"]["client_token"]
    token_file = tmp_path / "token"
    token_file.write_text(token)
    store = OpenBaoStore(settings_for(openbao, mounts, token_file=str(token_file)), environ={})
    renewals = counting_renewals(store)
    try:
        await store.put("leased", {"v": "1"})
        deadline = time.monotonic() + 2.6  # past the 2 s TTL
        while time.monotonic() < deadline:
            assert (await store.get("leased")).data == {"v": "1"}
            await asyncio.sleep(0.1)
        assert renewals() >= 1
        assert store.client.token == token  # renewed, never replaced
        assert openbao.client().auth.token.lookup(token)["data"]["id"] == token  # alive
    finally:
        await store.close()


def counting_renewals(store: OpenBaoStore) -> Callable[[], int]:
    """Count the store's token renewals; the returned function tells how many so far."""
    count = 0
    renew = store._renew

    def counted() -> None:
        nonlocal count
        renew()
        count += 1

    store._renew = counted  # type: ignore[method-assign]
    return lambda: count


# -- AppRole ------------------------------------------------------------------------------


async def test_approle_logs_in_and_works(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    store = await approle_store(openbao, mounts, tmp_path)
    try:
        assert await store.put("role/x", {"v": "1"}) == 1
        assert (await store.get("role/x")).data == {"v": "1"}
        assert await store.list() == ["role/x"]
        info = openbao.client().auth.token.lookup(store.client.token)["data"]
        assert info["policies"] != ["root"]
        assert info["meta"]
        assert "role_name" in info["meta"]
    finally:
        await store.close()


@ONE_LOOP
async def test_approle_logs_in_again_after_its_token_expired(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    store = await approle_store(openbao, mounts, tmp_path, token_ttl="1s", token_max_ttl="1h")
    try:
        await store.put("expiring", {"v": "1"})
        first = store.client.token
        await asyncio.sleep(1.4)  # idle: nobody renews it, the token expires
        assert (await store.get("expiring")).data == {"v": "1"}
        assert store.client.token != first
    finally:
        await store.close()


@ONE_LOOP
async def test_approle_keeps_working_across_the_token_max_ttl(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    """Renewals while the token lives, a new login when it reaches its max TTL, and
    no request fails in between.

    BUG: near the max TTL OpenBao answers renew-self with HTTP 500 "past the max TTL,
    cannot renew"; OpenBaoStore._ensure_token only falls back to a new login when the
    renewal raises SecretsAccessDenied, so the renewal's SecretsUnavailable reaches
    the callers until the token is really dead (then the 403 makes it log in again).
    """
    store = await approle_store(openbao, mounts, tmp_path, token_ttl="1s", token_max_ttl="2s")
    renewals = counting_renewals(store)
    failures: list[str] = []
    try:
        await store.put("long", {"v": "1"})
        first = store.client.token
        deadline = time.monotonic() + 2.7  # the token dies 2 s after the login
        while time.monotonic() < deadline:
            try:
                assert (await store.get("long")).data == {"v": "1"}
            except SecretsError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.05)
        assert renewals() >= 1
        assert store.client.token != first  # logged in again past the max TTL
        assert failures == []
    finally:
        await store.close()


async def test_approle_logs_in_again_after_its_token_is_revoked(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    """The AppRole has what it needs to log in again: a revoked token costs no request.

    BUG: OpenBaoStore._translate marks the store logged out on the 403 but the request
    itself fails with SecretsAccessDenied; only the next request logs in again. The
    store should log in again and retry the request once (AppRole only).
    """
    store = await approle_store(openbao, mounts, tmp_path)
    try:
        await store.put("revoked", {"v": "1"})
        first = store.client.token
        openbao.client().auth.token.revoke(first)
        assert (await store.get("revoked")).data == {"v": "1"}
        assert store.client.token != first
    finally:
        await store.close()


async def test_approle_recovers_on_the_next_request_after_a_revocation(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    """Whatever happens to the request that met the revoked token, the store logs in
    again and keeps working; it never stays logged out."""
    store = await approle_store(openbao, mounts, tmp_path)
    try:
        await store.put("revoked", {"v": "1"})
        first = store.client.token
        openbao.client().auth.token.revoke(first)
        with contextlib.suppress(SecretsAccessDenied):  # see the test above
            await store.get("revoked")
        for _ in range(3):
            assert (await store.get("revoked")).data == {"v": "1"}
        assert store.client.token != first
    finally:
        await store.close()


async def test_a_bad_secret_id_is_access_denied(
    openbao: OpenBaoServer, mounts: Mounts, tmp_path: Path
) -> None:
    """A secret ID the server refuses is refused credentials: SecretsAccessDenied.

    BUG: OpenBao answers a bad AppRole login with HTTP 400 "invalid role or secret
    ID" (hvac InvalidRequest); OpenBaoStore._translate turns every InvalidRequest
    that is not a check-and-set failure into a bare SecretsError, so the login failure
    is not a SecretsAccessDenied (the error the API documents for refused credentials).
    """
    store = await approle_store(openbao, mounts, tmp_path)
    overwrite(Path(store.settings.secret_id_file), "not-the-secret-id")
    try:
        with pytest.raises(SecretsAccessDenied):
            await store.get("x")
    finally:
        await store.close()


# -- health, failures, concurrency ----------------------------------------------------------


async def test_health_is_ok_with_the_version(store: OpenBaoStore) -> None:
    health = await store.health()
    assert health.ok
    assert health.backend == "openbao"
    assert health.detail.startswith("openbao ")


async def test_an_unreachable_server_is_unavailable(mounts: Mounts, openbao: OpenBaoServer) -> None:
    address = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = OpenBaoStore(
        settings_for(openbao, mounts, address=address, timeout=2.0),
        environ={"BAO_TOKEN": openbao.root_token},
    )
    try:
        health = await store.health()
        assert not health.ok
        assert health.detail.startswith("degraded:")
        assert "unreachable" in health.detail
        for call in (
            lambda: store.get("x"),
            lambda: store.put("x", {"a": "b"}),
            lambda: store.list(),
            lambda: store.generate_data_key(),
        ):
            with pytest.raises(SecretsUnavailable, match="unreachable"):
                await call()
    finally:
        await store.close()


async def test_concurrent_requests_are_bounded_by_max_concurrency(
    openbao: OpenBaoServer, mounts: Mounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 4
    store = OpenBaoStore(
        settings_for(openbao, mounts, max_concurrency=limit),
        environ={"BAO_TOKEN": openbao.root_token},
    )
    for n in range(10):
        await store.put(f"many/{n}", {"n": str(n)})
    lock = threading.Lock()
    in_flight = peak = calls = 0
    request = store.client.adapter.request

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, peak, calls
        with lock:
            in_flight += 1
            calls += 1
            peak = max(peak, in_flight)
        try:
            time.sleep(0.01)  # long enough for the others to pile up
            return request(*args, **kwargs)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(store.client.adapter, "request", counting)
    try:
        results = await asyncio.gather(*(store.get(f"many/{n % 10}") for n in range(50)))
        assert [r.data["n"] for r in results] == [str(n % 10) for n in range(50)]
        assert calls >= 50
        assert 2 <= peak <= limit
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-06T07:08:09.123456789Z", "2024-05-06T07:08:09.123456+00:00"),
        ("2024-05-06T07:08:09.1234567Z", "2024-05-06T07:08:09.123456+00:00"),
        ("2024-05-06T07:08:09.123456Z", "2024-05-06T07:08:09.123456+00:00"),
        # RFC 3339 with nanoseconds (Go's time.RFC3339Nano) drops trailing zeros:
        ("2024-05-06T07:08:09.12345Z", "2024-05-06T07:08:09.123450+00:00"),
        ("2024-05-06T07:08:09.5Z", "2024-05-06T07:08:09.500000+00:00"),
        ("2024-05-06T07:08:09Z", "2024-05-06T07:08:09+00:00"),
    ],
)
def test_openbao_times_are_parsed_whatever_their_precision(text: str, expected: str) -> None:
    """BUG: openbao._time slices the text to 26 characters after replacing "Z" with
    "+00:00"; with 5 fractional digits or fewer the slice cuts into the offset and the
    time silently becomes 0.0 (the epoch), which makes the rotation actor think a
    version is 54 years old. Go writes such times whenever the nanoseconds end in
    zeros (1 in 10,000 timestamps on Linux, 1 in 10 on macOS)."""
    from datetime import datetime

    assert _time(text) == pytest.approx(datetime.fromisoformat(expected).timestamp(), abs=1e-6)
