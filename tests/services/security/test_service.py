"""The aria_security service on its embedded default, booted from supervisors/.

The client API end to end, the audit log the service keeps (and VerifyAudit), watchers,
the PKCS#11 master key on a real SoftHSM2 token, and the ways the service refuses to
start (a corrupt store file, bad settings, no state directory).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import secrets as random
from pathlib import Path
from typing import Any

import pytest

from aria_actors import ConfigError, NoProcess, StartError
from aria_actors.services.security.api import (
    SecretNotFound,
    SecretsError,
    StoreHealth,
    VersionConflict,
)
from aria_actors.services.security.audit import AuditReport
from aria_actors.services.security.client import Secrets
from aria_actors.services.security.messages import (
    SecretChanged,
    SecurityHealth,
    VerifyAudit,
    WatchSecrets,
)
from tests.servers.softhsm import SoftHsmToken

from .support import (
    SECRETS_NAME,
    Watcher,
    boot_security,
    eventually,
    security_node,
)


def audit_lines(state: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state / "audit.log").read_text().splitlines()]


def audited(state: Path) -> list[tuple[Any, ...]]:
    """(actor, op, path, version, outcome) of every audit record, in order."""
    return [
        (r["actor"], r["op"], r["path"], r["version"], r["outcome"]) for r in audit_lines(state)
    ]


def error_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    return chain


# -- the client API -----------------------------------------------------------------------


async def test_the_client_api_end_to_end(tmp_path: Path, logs: list[dict[str, Any]]) -> None:
    state = tmp_path / "state"
    value = f"value-{random.token_hex(8)}"
    async with security_node(state) as node:
        assert await boot_security(node) == ["aria_security"]
        secrets = Secrets(node, caller="api_test")

        assert await secrets.put("app/db", {"user": "aria", "password": value}) == 1
        got = await secrets.get("app/db")
        assert (got.path, got.version, got.data) == (
            "app/db",
            1,
            {"user": "aria", "password": value},
        )
        assert await secrets.put("app/db", {"user": "aria", "password": "two"}, cas=1) == 2
        with pytest.raises(VersionConflict):
            await secrets.put("app/db", {"password": "lost"}, cas=1)
        with pytest.raises(VersionConflict):
            await secrets.put("app/db", {"password": "exists"}, cas=0)
        assert (await secrets.get("app/db", version=1)).data["password"] == value
        assert (await secrets.get("app/db")).data["password"] == "two"

        await secrets.put("app/cache/redis", {"url": "redis://x"})
        await secrets.put("apps/other", {"v": "1"})
        assert await secrets.list() == ["app/cache/redis", "app/db", "apps/other"]
        assert await secrets.list("app") == ["app/cache/redis", "app/db"]
        assert await secrets.list("nothing") == []

        info = await secrets.info("app/db")
        assert info.current_version == 2
        assert [v.version for v in info.versions] == [1, 2]

        await secrets.destroy("app/db", [1])
        with pytest.raises(SecretNotFound):
            await secrets.get("app/db", version=1)
        assert [v.destroyed for v in (await secrets.info("app/db")).versions] == [True, False]

        await secrets.delete("app/db")
        with pytest.raises(SecretNotFound):
            await secrets.get("app/db")
        with pytest.raises(SecretNotFound):
            await secrets.delete("app/db")
        with pytest.raises(ValueError, match="invalid secret path"):
            await secrets.get("../etc/passwd")

        health = await secrets.health()
        assert isinstance(health, StoreHealth)
        assert (health.backend, health.ok) == ("embedded", True)

        key, wrapped = await secrets.new_data_key()
        assert len(key) == 32
        assert key not in wrapped
        assert await secrets.unwrap_data_key(wrapped) == key
        with pytest.raises(SecretsError):
            await secrets.unwrap_data_key(bytes(len(wrapped)))

        # the requests are answered from tasks: many at once all complete
        versions, reads = await asyncio.gather(
            asyncio.gather(*(secrets.put(f"many/{n}", {"n": str(n)}) for n in range(40))),
            asyncio.gather(*(secrets.get("apps/other") for _ in range(40))),
        )
        assert versions == [1] * 40
        assert all(r.data == {"v": "1"} for r in reads)

    assert value not in repr(logs)  # no value in any log event
    async with security_node(state, name="t2") as node:  # a new node on the same files
        await boot_security(node)
        secrets = Secrets(node, caller="api_test")
        assert (await secrets.get("app/cache/redis")).data == {"url": "redis://x"}
        assert len(await secrets.list("many")) == 40
    assert (state / "master.key").stat().st_mode & 0o777 == 0o600


async def test_without_the_service_the_client_says_so(tmp_path: Path) -> None:
    async with security_node(tmp_path / "state") as node:
        with pytest.raises(NoProcess, match="aria_security"):
            await Secrets(node, caller="x").get("a")


# -- the audit log ------------------------------------------------------------------------


async def test_every_operation_is_audited_and_no_value_is(tmp_path: Path) -> None:
    state = tmp_path / "state"
    one, two = f"first-{random.token_hex(8)}", f"second-{random.token_hex(8)}"
    async with security_node(state) as node:
        await boot_security(node)
        secrets = Secrets(node, caller="aria_data.db")
        await secrets.put("app/db", {"password": one})
        await secrets.put("app/db", {"password": two}, cas=1)
        with pytest.raises(VersionConflict):
            await secrets.put("app/db", {"password": "x"}, cas=1)
        await secrets.get("app/db")
        await secrets.get("app/db", version=1)
        with pytest.raises(SecretNotFound):
            await secrets.get("nope")
        await secrets.info("app/db")
        await secrets.list("app")
        await secrets.destroy("app/db", [1])
        key, wrapped = await secrets.new_data_key()
        await secrets.unwrap_data_key(wrapped)
        await secrets.delete("app/db")
        with pytest.raises(ValueError, match="invalid secret path"):
            await secrets.get("bad path")
        with pytest.raises(SecretNotFound):
            await Secrets(node, caller="").get("app/gone")
        await secrets.health()  # not an operation on a secret: not audited

    assert audited(state) == [
        ("aria_data.db", "put", "app/db", 1, "ok"),
        ("aria_data.db", "put", "app/db", 2, "ok"),
        ("aria_data.db", "put", "app/db", None, "VersionConflict"),
        ("aria_data.db", "get", "app/db", None, "ok"),
        ("aria_data.db", "get", "app/db", 1, "ok"),
        ("aria_data.db", "get", "nope", None, "SecretNotFound"),
        ("aria_data.db", "metadata", "app/db", None, "ok"),
        ("aria_data.db", "list", "app", None, "ok"),
        ("aria_data.db", "destroy", "app/db", None, "ok"),
        ("aria_data.db", "data_key", None, None, "ok"),
        ("aria_data.db", "unwrap_data_key", None, None, "ok"),
        ("aria_data.db", "delete", "app/db", None, "ok"),
        ("aria_data.db", "get", "bad path", None, "ValueError"),
        ("unknown", "get", "app/gone", None, "SecretNotFound"),
    ]
    text = (state / "audit.log").read_bytes()
    for secret in (one.encode(), two.encode(), key, key.hex().encode(), base64.b64encode(key)):
        assert secret not in text
    records = audit_lines(state)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(r["prev"] == p["hash"] for p, r in itertools.pairwise(records))
    assert (state / "audit.log").stat().st_mode & 0o777 == 0o600


async def test_verify_audit_finds_a_tampered_record(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with security_node(state) as node:
        await boot_security(node)
        secrets = Secrets(node, caller="auditor")
        for n in range(5):
            await secrets.put(f"audited/{n}", {"v": str(n)})
        actor = node.whereis(SECRETS_NAME)
        assert actor is not None
        report = await actor.call(VerifyAudit())
        assert report == AuditReport(ok=True, records=5)

        # Rewrite the third record in place, as someone covering their tracks would.
        log = state / "audit.log"
        lines = log.read_bytes().splitlines(keepends=True)
        assert b'"actor":"auditor"' in lines[2]
        lines[2] = lines[2].replace(b'"actor":"auditor"', b'"actor":"nobody!"')
        with log.open("r+b") as file:  # same file, same length: the service keeps its fd
            file.write(b"".join(lines))

        report = await actor.call(VerifyAudit())
        assert isinstance(report, AuditReport)
        assert not report.ok
        assert report.first_bad_line == 3
        assert report.records == 2
        assert "altered" in report.reason

        await secrets.get("audited/1")  # the service goes on recording
        assert len(audit_lines(state)) == 6
        assert (await actor.call(VerifyAudit())).first_bad_line == 3


async def test_a_request_is_answered_even_when_the_audit_log_cannot_take_it(
    tmp_path: Path,
) -> None:
    """The audit log refuses to continue a file whose last line is cut short
    (AuditLogCorrupt): the service must then refuse to start, naming the file, or fail
    the requests with that error; never answer unaudited, never leave a caller waiting.
    """
    state = tmp_path / "state"
    async with security_node(state) as node:
        await boot_security(node)
        await Secrets(node, caller="x").put("a", {"v": "1"})
    log = state / "audit.log"
    log.write_bytes(log.read_bytes()[:-20])  # the last record torn in the middle

    async with security_node(state, name="t2") as node:
        refused: StartError | None = None
        try:
            await boot_security(node)
        except StartError as exc:  # refusing to start is a right answer too
            refused = exc
        if refused is not None:
            assert "audit.log" in str(refused)
            return
        secrets = Secrets(node, caller="x", timeout=3.0)
        with pytest.raises(SecretsError, match=r"audit\.log"):  # not a CallTimeout
            await secrets.get("a")
        with pytest.raises(SecretsError, match=r"audit\.log"):
            await secrets.put("a", {"v": "unaudited"})


async def test_audit_can_be_turned_off(tmp_path: Path) -> None:
    """With ``audit = false`` there is no audit.log, and VerifyAudit says so.

    BUG: SecretsActor.verify_audit (actors.py, ``@handles(VerifyAudit)``) raises the
    SecretsError inside the handler, which crashes the secrets actor: the caller gets
    ActorExited instead of the SecretsError, and the restart drops every watcher.
    Suggested fix: fail the reply (``self.defer_reply().fail(...)``) instead of raising;
    the same for an OSError from verify() (an unreadable audit.log).
    """
    state = tmp_path / "state"
    async with security_node(state, {"audit": False}) as node:
        await boot_security(node)
        await Secrets(node, caller="x").put("a", {"v": "1"})
        actor = node.whereis(SECRETS_NAME)
        assert actor is not None
        with pytest.raises(SecretsError, match="audit"):
            await actor.call(VerifyAudit())
        assert node.whereis(SECRETS_NAME) == actor  # not crashed and restarted
    assert not (state / "audit.log").exists()


# -- watchers -----------------------------------------------------------------------------


async def test_watchers_hear_of_changes_under_their_prefix(tmp_path: Path) -> None:
    async with security_node(tmp_path / "state") as node:
        await boot_security(node)
        secrets = Secrets(node, caller="watch_test")
        app: list[SecretChanged] = []
        everything: list[SecretChanged] = []
        other: list[SecretChanged] = []
        app_ref = await node.spawn(Watcher, sink=app)
        all_ref = await node.spawn(Watcher, sink=everything)
        other_ref = await node.spawn(Watcher, sink=other)
        await secrets.watch(app_ref, "app")
        await secrets.watch(all_ref)
        await secrets.watch(other_ref, "other/")

        await secrets.put("app/db", {"v": "1"})
        await secrets.put("app/db", {"v": "2"})
        await secrets.put("apps/x", {"v": "1"})  # not under "app": whole segments
        await secrets.put("other/y", {"v": "1"})
        await secrets.put("app", {"v": "1"})  # the prefix itself
        with pytest.raises(VersionConflict):
            await secrets.put("app/db", {"v": "x"}, cas=1)  # a failure: nothing to tell
        with pytest.raises(SecretNotFound):
            await secrets.delete("app/missing")
        await secrets.get("app/db")  # a read: nothing to tell
        await secrets.destroy("app/db", [1])
        await secrets.delete("app/db")
        await eventually(lambda: len(everything) == 7, what="7 changes seen by the catch-all")

        assert app == [
            SecretChanged("app/db", "put", 1),
            SecretChanged("app/db", "put", 2),
            SecretChanged("app", "put", 1),
            SecretChanged("app/db", "destroy"),
            SecretChanged("app/db", "delete"),
        ]
        assert [(c.path, c.change) for c in everything] == [
            ("app/db", "put"),
            ("app/db", "put"),
            ("apps/x", "put"),
            ("other/y", "put"),
            ("app", "put"),
            ("app/db", "destroy"),
            ("app/db", "delete"),
        ]
        assert other == [SecretChanged("other/y", "put", 1)]

        await secrets.unwatch(app_ref)
        await secrets.put("app/after", {"v": "1"})
        await eventually(lambda: len(everything) == 8)
        assert len(app) == 5


async def test_a_dead_watcher_is_dropped(tmp_path: Path, logs: list[dict[str, Any]]) -> None:
    async with security_node(tmp_path / "state") as node:
        await boot_security(node)
        secrets = Secrets(node, caller="watch_test")
        actor = node.whereis(SECRETS_NAME)
        assert actor is not None
        seen: list[SecretChanged] = []
        alive = await node.spawn(Watcher, sink=seen)
        doomed = await node.spawn(Watcher, sink=[])
        await secrets.watch(alive, "w")
        await actor.call(WatchSecrets(doomed, "w"))  # the message, as the console sends it
        assert repr(doomed) in node.inspect_state(actor)["watchers"]

        await node.stop_actor(doomed)
        await eventually(lambda: repr(doomed) not in node.inspect_state(actor)["watchers"])
        assert repr(alive) in node.inspect_state(actor)["watchers"]
        await secrets.put("w/x", {"v": "1"})
        await eventually(lambda: seen == [SecretChanged("w/x", "put", 1)])
        assert actor.is_alive()


async def test_a_malformed_watch_request_is_refused_and_the_watchers_kept(
    tmp_path: Path,
) -> None:
    """A request the secrets actor refuses fails at the caller; the actor goes on.

    BUG: SecretsActor.watch (actors.py, the ``@handles(WatchSecrets)`` handler) raises
    TypeError inside the handler, which crashes the secrets actor: the caller gets
    ActorExited instead of the TypeError, the supervisor restarts the actor, and every
    watcher other services registered is silently forgotten (they stop hearing of
    rotations). Suggested fix: ``self.defer_reply().fail(TypeError(...))`` and return.
    """
    async with security_node(tmp_path / "state") as node:
        await boot_security(node)
        secrets = Secrets(node, caller="watch_test")
        actor = node.whereis(SECRETS_NAME)
        assert actor is not None
        seen: list[SecretChanged] = []
        watcher = await node.spawn(Watcher, sink=seen)
        await secrets.watch(watcher, "w")
        with pytest.raises(TypeError, match="ActorRef"):
            await actor.call(WatchSecrets("not a ref", "w"))
        assert node.whereis(SECRETS_NAME) == actor
        await secrets.put("w/x", {"v": "1"})
        await eventually(lambda: seen == [SecretChanged("w/x", "put", 1)], timeout=2.0)


# -- the PKCS#11 master key -----------------------------------------------------------------


def pkcs11_settings(token: SoftHsmToken, pin_file: Path) -> dict[str, Any]:
    return {
        "master_key": "pkcs11",
        "pkcs11": {
            "module": token.module,
            "token": token.label,
            "pin_file": str(pin_file),
            "key_label": "aria-master-test",
        },
    }


@pytest.mark.integration
async def test_the_pkcs11_master_key_survives_a_restart(
    softhsm: SoftHsmToken, tmp_path: Path
) -> None:
    softhsm.open_lib()  # python-pkcs11 reads this token's SOFTHSM2_CONF
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.pin + "\n")
    settings = pkcs11_settings(softhsm, pin_file)
    state = tmp_path / "state"
    written = {f"hsm/{n}": {"v": f"value-{n}"} for n in range(5)}
    async with security_node(state, settings) as node:
        await boot_security(node)
        secrets = Secrets(node, caller="hsm_test")
        for path, data in written.items():
            await secrets.put(path, data)
    assert (state / "master.key.wrapped").is_file()
    assert not (state / "master.key").exists()  # no key in clear on disk

    async with security_node(state, settings, name="t2") as node:
        await boot_security(node)
        secrets = Secrets(node, caller="hsm_test")
        for path, data in written.items():
            assert (await secrets.get(path)).data == data


@pytest.mark.integration
async def test_a_wrong_pin_is_a_clear_start_error(softhsm: SoftHsmToken, tmp_path: Path) -> None:
    softhsm.open_lib()
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.pin)
    settings = pkcs11_settings(softhsm, pin_file)
    state = tmp_path / "state"
    async with security_node(state, settings) as node:
        await boot_security(node)
        await Secrets(node, caller="hsm_test").put("hsm/x", {"v": "1"})
    files = {name: (state / name).read_bytes() for name in ("master.key.wrapped", "secrets.enc")}

    pin_file.write_text("0000")
    async with security_node(state, settings, name="t2") as node:
        with pytest.raises(StartError) as failed:
            await boot_security(node)
        message = str(failed.value)
        assert "PIN" in message
        assert softhsm.label in message
        assert "0000" not in message
        assert softhsm.pin not in message.replace(softhsm.label, "")
        assert node.whereis(SECRETS_NAME) is None
    assert {name: (state / name).read_bytes() for name in files} == files

    pin_file.write_text(softhsm.pin)  # the right PIN again: all is still there
    async with security_node(state, settings, name="t3") as node:
        await boot_security(node)
        assert (await Secrets(node, caller="hsm_test").get("hsm/x")).data == {"v": "1"}


async def test_no_pin_at_all_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARIA_PKCS11_PIN", raising=False)
    async with security_node(tmp_path / "state", {"master_key": "pkcs11"}) as node:
        with pytest.raises(StartError, match=r"services\.aria_security\.pkcs11") as failed:
            await boot_security(node)
        assert any(isinstance(e, ConfigError) for e in error_chain(failed.value))


# -- refusing to start ----------------------------------------------------------------------


def flip_a_byte(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + bytes([blob[middle] ^ 0x40]) + blob[middle + 1 :]


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(flip_a_byte, id="a-flipped-byte"),
        pytest.param(lambda blob: blob[: len(blob) // 2], id="truncated"),
        pytest.param(lambda blob: b"not an aria store at all" * 3, id="garbage"),
    ],
)
async def test_a_corrupt_store_file_stops_the_start_and_is_left_as_it_is(
    tmp_path: Path, corrupt: Any
) -> None:
    state = tmp_path / "state"
    async with security_node(state) as node:
        await boot_security(node)
        await Secrets(node, caller="x").put("kept", {"v": "precious"})
    store_file = state / "secrets.enc"
    damaged = corrupt(store_file.read_bytes())
    store_file.write_bytes(damaged)

    async with security_node(state, name="t2") as node:
        with pytest.raises(StartError) as failed:
            await boot_security(node)
        assert str(store_file) in str(failed.value)
        assert "aria_security" in str(failed.value)
        assert node.whereis(SECRETS_NAME) is None
        assert node.service("aria_security") is None
    assert store_file.read_bytes() == damaged  # never overwritten
    assert not [p.name for p in state.iterdir() if p.name.endswith(".tmp")]


async def test_a_lost_master_key_does_not_clobber_the_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with security_node(state) as node:
        await boot_security(node)
        await Secrets(node, caller="x").put("kept", {"v": "precious"})
    before = (state / "secrets.enc").read_bytes()
    (state / "master.key").unlink()
    async with security_node(state, name="t2") as node:
        with pytest.raises(StartError, match=r"secrets\.enc"):
            await boot_security(node)
    assert (state / "secrets.enc").read_bytes() == before


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"backend": "vault"}, "services.aria_security.backend"),
        ({"bakend": "embedded"}, "services.aria_security.bakend"),
        ({"master_key": "tpm"}, "services.aria_security.master_key"),
        ({"audit": "yes"}, "services.aria_security.audit"),
        ({"openbao": {"timeout": 0}}, "services.aria_security.openbao"),
        ({"openbao": {"adress": "http://x"}}, "services.aria_security.openbao.adress"),
        ({"openbao": {"auth": "approle"}}, "services.aria_security.openbao"),
        ({"pkcs11": {"pin": "1234"}}, "services.aria_security.pkcs11.pin"),
        ({"rotation": [{"path": "a", "interval": 0}]}, "services.aria_security.rotation[0]"),
        ({"rotation": [{"path": "a"}]}, "services.aria_security.rotation[0].interval"),
        ({"max_versions": 0}, "max_versions"),
    ],
)
async def test_bad_settings_stop_the_start_naming_the_key(
    tmp_path: Path, settings: dict[str, Any], key: str
) -> None:
    async with security_node(tmp_path / "state", settings) as node:
        with pytest.raises(StartError) as failed:
            await boot_security(node)
        assert key in str(failed.value)
        configs = [e for e in error_chain(failed.value) if isinstance(e, ConfigError)]
        assert configs
        assert key in str(configs[0])
        assert node.whereis(SECRETS_NAME) is None
    assert not (tmp_path / "state" / "secrets.enc").exists()


async def test_a_node_without_a_state_directory_is_refused(tmp_path: Path) -> None:
    node = security_node(tmp_path)
    node.state_dir = None
    async with node:
        with pytest.raises(StartError, match="state dir"):
            await boot_security(node)


async def test_health_probe_answers(tmp_path: Path) -> None:
    async with security_node(tmp_path / "state") as node:
        await boot_security(node)
        actor = node.whereis(SECRETS_NAME)
        assert actor is not None
        health = await actor.call(SecurityHealth())
        assert health.ok
        assert health.backend == "embedded"
        assert node.metrics.get_sample_value("aria_security_backend_up") == 1
