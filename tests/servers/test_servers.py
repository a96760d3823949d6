"""The real-server fixtures themselves, against the real servers."""

from __future__ import annotations

import base64
import secrets
import subprocess
from typing import Any

import asyncpg
import hvac
import hvac.exceptions
import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from tests.servers import OpenBaoServer, PostgresCluster, SoftHsmToken
from tests.servers._util import ComponentMissing
from tests.servers.fixtures import PgDatabase, PostgresFactory, missing
from tests.servers.postgres import StopMode

pytestmark = pytest.mark.integration


# -- the CI rule -----------------------------------------------------------------------


def test_missing_component_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        missing(ComponentMissing("thing", "apt-get install thing"))


def test_missing_component_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="thing is not installed"):
        missing(ComponentMissing("thing", "apt-get install thing"))


# -- PostgreSQL --------------------------------------------------------------------------


async def test_postgres_over_socket_and_tcp(pg_database: PgDatabase) -> None:
    conn = await asyncpg.connect(pg_database.dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == "postgres"
        assert await conn.fetchval("SELECT current_database()") == pg_database.name
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SELECT inet_server_addr()") is None  # a Unix socket
    finally:
        await conn.close()

    conn = await asyncpg.connect(pg_database.tcp_dsn)
    try:
        assert await conn.fetchval("SELECT current_user") == pg_database.owner
        assert str(await conn.fetchval("SELECT inet_server_addr()")) == "127.0.0.1"
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO t VALUES (1)")
    finally:
        await conn.close()

    cluster = pg_database.cluster
    wrong = cluster.tcp_dsn(pg_database.name, user=cluster.password_role, password="wrong")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_postgres_roles_with_passwords(postgres: PostgresCluster) -> None:
    role, password = "aria_admin_probe", "s3cret'pw"
    postgres.create_role(role, password, superuser=True)
    try:
        conn = await asyncpg.connect(postgres.tcp_dsn(user=role, password=password))
        try:
            assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        finally:
            await conn.close()
        conn = await asyncpg.connect(postgres.tcp_dsn(user=postgres.superuser))
        await conn.close()
    finally:
        postgres.psql('DROP ROLE "aria_admin_probe"')


@pytest.mark.parametrize("round_", [1, 2])
async def test_postgres_fresh_database_per_test(pg_database: PgDatabase, round_: int) -> None:
    conn = await asyncpg.connect(pg_database.dsn)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
        test_dbs = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'aria_t_%'")
        assert [row["datname"] for row in test_dbs] == [pg_database.name]  # the others dropped
        await conn.execute(f"CREATE TABLE left_by_round_{round_} (x int)")
    finally:
        await conn.close()


async def test_postgres_kill_mid_transaction_keeps_committed_data(
    postgres_factory: PostgresFactory,
) -> None:
    cluster = postgres_factory(durable=True)
    assert cluster.durable
    conn = await asyncpg.connect(cluster.dsn)
    await conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, note text)")
    await conn.execute("INSERT INTO ledger VALUES (1, 'committed')")
    pending = await asyncpg.connect(cluster.tcp_dsn(user=cluster.superuser))
    await pending.execute("BEGIN")
    await pending.execute("INSERT INTO ledger VALUES (2, 'in flight')")

    old_pid = cluster.pid
    cluster.kill()
    assert not cluster.is_running()
    with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, OSError)):
        await conn.fetchval("SELECT 1")
    conn.terminate()
    pending.terminate()

    cluster.start()  # crash recovery
    assert cluster.pid != old_pid
    conn = await asyncpg.connect(cluster.dsn)
    try:
        rows = await conn.fetch("SELECT id, note FROM ledger ORDER BY id")
        assert [tuple(row) for row in rows] == [(1, "committed")]
    finally:
        await conn.close()


async def test_postgres_stop_and_start_again(postgres_factory: PostgresFactory) -> None:
    cluster = postgres_factory(durable=False)
    dsn = cluster.create_database("kept")
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE t AS SELECT 42 AS x")
    await conn.close()
    port = cluster.port
    modes: tuple[StopMode, ...] = ("fast", "immediate")
    for mode in modes:
        cluster.stop(mode)
        assert not cluster.is_running()
        cluster.start()
        assert cluster.port == port
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT x FROM t") == 42
        finally:
            await conn.close()


# -- OpenBao, dev mode -------------------------------------------------------------------


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_openbao_dev_kv_v2(openbao: OpenBaoServer) -> None:
    assert openbao.address.startswith("http://127.0.0.1:")
    health = openbao.health()
    assert health is not None
    assert health["http_status"] == 200
    mount = _unique("kv")
    openbao.enable_kv_v2(mount)
    openbao.enable_kv_v2(mount)  # idempotent
    client = openbao.client()
    assert client.is_authenticated()
    client.secrets.kv.v2.create_or_update_secret("chars/alice", {"k": "v1"}, mount_point=mount)
    client.secrets.kv.v2.create_or_update_secret("chars/alice", {"k": "v2"}, mount_point=mount)
    read = client.secrets.kv.v2.read_secret_version(
        "chars/alice", mount_point=mount, raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"k": "v2"}
    assert read["data"]["metadata"]["version"] == 2


def test_openbao_dev_transit(openbao: OpenBaoServer) -> None:
    mount = _unique("transit")
    openbao.enable_transit(mount, key="aria-kek")
    transit = openbao.client().secrets.transit
    plaintext = base64.b64encode(b"character secret").decode()
    encrypted = transit.encrypt_data("aria-kek", plaintext, mount_point=mount)
    ciphertext = encrypted["data"]["ciphertext"]
    assert ciphertext.startswith("vault:v1:")
    decrypted = transit.decrypt_data("aria-kek", ciphertext, mount_point=mount)
    assert base64.b64decode(decrypted["data"]["plaintext"]) == b"character secret"


def test_openbao_dev_approle_login(openbao: OpenBaoServer) -> None:
    kv = _unique("kv")
    openbao.enable_kv_v2(kv)
    openbao.client().secrets.kv.v2.create_or_update_secret("app/db", {"pw": "x"}, mount_point=kv)
    creds = openbao.enable_approle(
        _unique("svc"), f'path "{kv}/data/app/*" {{ capabilities = ["read"] }}', mount=_unique("ar")
    )
    app = openbao.client(token="")
    login = app.auth.approle.login(creds.role_id, creds.secret_id, mount_point=creds.mount)
    assert f"{creds.role}-policy" in login["auth"]["policies"]
    assert app.is_authenticated()
    read = app.secrets.kv.v2.read_secret_version(
        "app/db", mount_point=kv, raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"pw": "x"}
    with pytest.raises(hvac.exceptions.Forbidden):
        app.secrets.kv.v2.create_or_update_secret("app/db", {"pw": "y"}, mount_point=kv)


def test_openbao_dev_restart_loses_data() -> None:
    with OpenBaoServer() as server:
        server.enable_kv_v2("kept")
        token = server.root_token
        server.restart()
        assert server.root_token == token
        assert server.client().is_authenticated()
        mounts = server.client().sys.list_mounted_secrets_engines()  # type: ignore[no-untyped-call]
        assert "kept/" not in mounts["data"]


# -- OpenBao, persistent -------------------------------------------------------------------


def _read(server: OpenBaoServer, path: str, mount: str) -> object:
    reply = server.client().secrets.kv.v2.read_secret_version(
        path, mount_point=mount, raise_on_deleted_version=True
    )
    return reply["data"]["data"]


def test_openbao_persistent_survives_stop_and_start(openbao_persistent: OpenBaoServer) -> None:
    server = openbao_persistent
    assert server.mode == "persistent"
    assert server.unseal_key
    server.enable_kv_v2("aria")
    server.enable_transit("transit", key="k")
    server.client().secrets.kv.v2.create_or_update_secret("s", {"v": "kept"}, mount_point="aria")
    encrypted = server.client().secrets.transit.encrypt_data("k", base64.b64encode(b"x").decode())
    ciphertext = encrypted["data"]["ciphertext"]

    address = server.address
    server.stop()
    assert not server.is_running()
    assert server.health() is None
    server.start(unseal=False)
    assert server.address == address
    assert server.is_sealed()
    health = server.health()
    assert health is not None
    assert health["http_status"] == 503
    assert health["sealed"] is True
    with pytest.raises(hvac.exceptions.VaultDown):
        _read(server, "s", "aria")

    server.unseal()
    assert not server.is_sealed()
    assert _read(server, "s", "aria") == {"v": "kept"}
    plain = server.client().secrets.transit.decrypt_data("k", ciphertext)["data"]["plaintext"]
    assert base64.b64decode(plain) == b"x"


def test_openbao_persistent_seal_and_kill(openbao_persistent: OpenBaoServer) -> None:
    server = openbao_persistent
    server.enable_kv_v2("aria")
    server.client().secrets.kv.v2.create_or_update_secret("s", {"v": 1}, mount_point="aria")
    server.seal()
    assert server.is_sealed()
    server.unseal()
    assert _read(server, "s", "aria") == {"v": 1}

    server.kill()  # SIGKILL: a crash
    server.start()
    assert not server.is_sealed()
    assert _read(server, "s", "aria") == {"v": 1}


# -- SoftHSM2 ------------------------------------------------------------------------------


def test_softhsm_token_keys_encrypt_and_wrap(softhsm: SoftHsmToken) -> None:
    assert softhsm.module.endswith("libsofthsm2.so")
    token = softhsm.token()
    assert token.label == softhsm.label == "aria-test"
    with token.open(user_pin=softhsm.pin, rw=True) as session:
        key: Any = session.generate_key(KeyType.AES, 256, label="aria-dek", store=True)
        iv = session.generate_random(128)
        ciphertext = key.encrypt(b"character memory", mechanism_param=iv)
        assert ciphertext != b"character memory"
        assert key.decrypt(ciphertext, mechanism_param=iv) == b"character memory"

        kek: Any = session.generate_key(
            KeyType.AES,
            256,
            label="aria-kek",
            store=True,
            capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        )
        dek: Any = session.generate_key(
            KeyType.AES,
            256,
            store=False,
            template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False},
        )
        sealed = dek.encrypt(b"wrapped", mechanism_param=iv)
        wrapped = kek.wrap_key(dek, mechanism=Mechanism.AES_KEY_WRAP)
        assert len(wrapped) == 40  # 32 key bytes + the 8-byte integrity block
        unwrapped: Any = kek.unwrap_key(
            ObjectClass.SECRET_KEY,
            KeyType.AES,
            wrapped,
            mechanism=Mechanism.AES_KEY_WRAP,
            store=False,
        )
        assert unwrapped.decrypt(sealed, mechanism_param=iv) == b"wrapped"
        secret_keys = session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
        labels = {obj[Attribute.LABEL] for obj in secret_keys}
        assert {"aria-dek", "aria-kek"} <= labels

    with pytest.raises(pkcs11.PinIncorrect):
        token.open(user_pin="0000")


def test_softhsm_token_is_fresh_and_visible_to_subprocesses(softhsm: SoftHsmToken) -> None:
    with softhsm.token().open(user_pin=softhsm.pin) as session:
        assert list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})) == []
    shown = subprocess.run(
        [softhsm.util, "--show-slots"], capture_output=True, text=True, check=True, timeout=30
    )
    assert "aria-test" in shown.stdout  # SOFTHSM2_CONF is in the environment


def test_softhsm_teardown_lets_the_next_user_load_its_own_conf(
    softhsm: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert softhsm.token().label == "aria-test"  # the module is initialized on this conf
    with SoftHsmToken(label="next-user") as other:
        softhsm.close_lib()  # what the fixture's teardown does
        monkeypatch.setenv("SOFTHSM2_CONF", other.env["SOFTHSM2_CONF"])
        lib = pkcs11.lib(other.module)  # plain use, as a service would: reads the conf now
        try:
            labels = {token.label for token in lib.get_tokens()}
            assert labels - {""} == {"next-user"}  # "": SoftHSM's free slot
        finally:
            lib.finalize()
