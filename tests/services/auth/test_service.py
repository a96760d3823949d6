"""aria_auth on a node, on SQLite and on PostgreSQL: users, roles, logins, token
pairs, refresh rotation and reuse detection, revocation, root keys, MFA,
throttling, third-party caveats, restarts and bad settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aria_actors import Node, StartError
from aria_actors.services.auth import caveats as cv
from aria_actors.services.auth import codec, macaroons, totp
from aria_actors.services.auth.client import AUTH_ACTOR, Auth
from aria_actors.services.auth.errors import (
    AuthConflict,
    CaveatUnmet,
    DischargeError,
    InvalidSignature,
    InvalidToken,
    LoginFailed,
    LoginThrottled,
    MfaFailed,
    MfaRequired,
    PermissionDenied,
    RefreshReused,
    TokenExpired,
    TokenRevoked,
    UnknownToken,
)
from aria_actors.services.auth.messages import Purge, VerifyToken
from aria_actors.services.auth.tokens import TokenPair
from aria_actors.services.data.client import Data
from aria_actors.testing import wait_restarted
from tests.servers.fixtures import PgDatabase

from .support import PASSWORD, auth_node, auth_settings, postgres_data


@pytest.fixture(params=["sqlite", "postgres"])
def data_settings(request: pytest.FixtureRequest) -> dict[str, Any] | None:
    """aria_data's settings: its default SQLite, or the test's PostgreSQL database."""
    if request.param == "sqlite":
        return None
    pg: PgDatabase = request.getfixturevalue("pg_database")
    return postgres_data(pg)


@pytest.fixture
async def node(tmp_path: Path, data_settings: dict[str, Any] | None) -> AsyncIterator[Node]:
    settings = auth_settings(
        roles={"reader": {"permissions": ["chars:read"]}},
        services={"aria_storage": {"permissions": ["aria_data:read"], "lifetime": 600}},
    )
    async with auth_node(tmp_path / "state", settings, data_settings) as running:
        yield running


@pytest.fixture
async def alice(node: Node) -> Auth:
    """An Auth handle; user alice (password PASSWORD) holds role reader."""
    auth = Auth(node)
    await auth.create_user("alice", PASSWORD)
    await auth.assign_role("alice", "reader")
    return auth


# -- users and roles -----------------------------------------------------------------------


async def test_users_and_roles_are_managed_at_run_time(alice: Auth) -> None:
    auth = alice
    assert await auth.permissions("alice") == ["chars:read"]
    await auth.put_role("writer", ["chars:write", "chars:read"], "edits characters")
    await auth.assign_role("alice", "writer")
    assert await auth.permissions("alice") == ["chars:read", "chars:write"]
    assert (await auth.roles())["writer"] == ["chars:read", "chars:write"]
    await auth.unassign_role("alice", "writer")
    assert await auth.permissions("alice") == ["chars:read"]
    [info] = await auth.users()
    assert (info.user, info.roles, info.disabled, info.mfa) == ("alice", ["reader"], False, False)
    with pytest.raises(AuthConflict, match="already exists"):
        await auth.create_user("alice", PASSWORD)
    with pytest.raises(AuthConflict, match="no role"):
        await auth.assign_role("alice", "nonexistent")
    with pytest.raises(AuthConflict, match="no user"):
        await auth.assign_role("bob", "reader")
    with pytest.raises(ValueError, match="at least"):
        await auth.create_user("bob", "short")
    with pytest.raises(ValueError, match="user name"):
        await auth.create_user("bad name", PASSWORD)
    with pytest.raises(ValueError, match="permission"):
        await auth.put_role("bad", ["not a permission"])
    await auth.assign_role("alice", "writer")
    await auth.delete_role("writer")
    assert await auth.permissions("alice") == ["chars:read"]
    assert "writer" not in await auth.roles()
    with pytest.raises(AuthConflict, match="no role"):
        await auth.delete_role("writer")
    await auth.delete_user("alice")
    assert await auth.users() == []
    with pytest.raises(LoginFailed):
        await auth.login("alice", PASSWORD)


async def test_passwords_are_stored_as_argon2id_hashes(alice: Auth, node: Node) -> None:
    row = (
        await Data(node)
        .database()
        .fetchrow("SELECT password_hash FROM auth_users WHERE id = 'alice'")
    )
    assert row is not None
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]


# -- logins and token pairs ----------------------------------------------------------------


async def test_a_login_gives_a_pair_whose_access_token_carries_the_roles(alice: Auth) -> None:
    pair = await alice.login("alice", PASSWORD, source="10.0.0.7")
    assert pair.principal == "alice"
    assert pair.access_expires < pair.refresh_expires
    verified = await alice.verify(pair.access, permissions={"chars:read"})
    assert (verified.principal, verified.kind, verified.family) == ("alice", "access", pair.family)
    assert verified.permissions == frozenset({"chars:read"})
    with pytest.raises(PermissionDenied, match="chars:write"):
        await alice.verify(pair.access, permissions={"chars:write"})
    with pytest.raises(InvalidToken, match="refresh token"):
        await alice.verify(pair.refresh)  # a refresh token is no access token
    texts = [c.id.decode() for c in codec.decode(pair.access).caveats]
    assert texts[0] == cv.LANGUAGE
    assert "user = alice" in texts
    assert "permissions = chars:read" in texts


async def test_a_wrong_password_or_user_fails_alike(alice: Auth) -> None:
    with pytest.raises(LoginFailed) as wrong_password:
        await alice.login("alice", "not the password at all")
    with pytest.raises(LoginFailed) as no_user:
        await alice.login("mallory", "not the password at all")
    assert str(wrong_password.value) == str(no_user.value) == "wrong user name or password"


async def test_a_disabled_user_cannot_log_in_and_loses_its_tokens(alice: Auth) -> None:
    pair = await alice.login("alice", PASSWORD)
    await alice.disable_user("alice")
    with pytest.raises(TokenRevoked, match="disabled"):
        await alice.verify(pair.access)
    with pytest.raises(LoginFailed):
        await alice.login("alice", PASSWORD)
    await alice.disable_user("alice", disabled=False)
    await alice.verify(pair.access)
    await alice.login("alice", PASSWORD)


async def test_attenuation_by_the_holder_narrows_what_the_service_accepts(alice: Auth) -> None:
    await alice.put_role("writer", ["chars:write"])
    await alice.assign_role("alice", "writer")
    pair = await alice.login("alice", PASSWORD)
    narrowed = macaroons.attenuate(
        pair.access,
        [cv.permissions({"chars:read"}), cv.scope("storage", "/chars/hero/")],
    )
    await alice.verify(
        narrowed, permissions={"chars:read"}, resources={"storage": "/chars/hero/a.caibx"}
    )
    with pytest.raises(PermissionDenied):
        await alice.verify(narrowed, permissions={"chars:write"}, resources={"storage": "/x"})
    with pytest.raises(PermissionDenied, match="outside"):
        await alice.verify(
            narrowed, permissions={"chars:read"}, resources={"storage": "/chars/villain/a"}
        )
    # widening by a later caveat is impossible: permissions intersect
    rewidened = macaroons.attenuate(narrowed, [cv.permissions({"chars:read", "chars:write"})])
    with pytest.raises(PermissionDenied):
        await alice.verify(
            rewidened, permissions={"chars:write"}, resources={"storage": "/chars/hero/a"}
        )


async def test_expired_tampered_and_foreign_tokens_are_refused(alice: Auth) -> None:
    pair = await alice.login("alice", PASSWORD)
    expired = macaroons.attenuate(pair.access, [cv.time_before(time.time() - 1)])
    with pytest.raises(TokenExpired):
        await alice.verify(expired)
    token = codec.decode(pair.access)
    flipped = codec.Token(
        token.location,
        token.identifier,
        token.caveats,
        bytes([token.signature[0] ^ 1]) + token.signature[1:],
    )
    with pytest.raises(InvalidSignature):
        await alice.verify(codec.encode(flipped))
    stripped = codec.Token(token.location, token.identifier, token.caveats[:-1], token.signature)
    with pytest.raises(InvalidSignature):
        await alice.verify(codec.encode(stripped))
    forged = macaroons.mint(bytes(32), token.identifier, [cv.LANGUAGE], "aria")
    with pytest.raises(InvalidSignature):
        await alice.verify(forged)  # the right identifier, the wrong root key
    stranger = macaroons.mint(bytes(32), b"aria1:" + b"A" * 22, [cv.LANGUAGE])
    with pytest.raises(UnknownToken):
        await alice.verify(stranger)
    with pytest.raises(InvalidToken, match="not a token of aria_auth"):
        await alice.verify(macaroons.mint(bytes(32), b"someone else's", []))
    for garbage in ["", "!!!", "x" * 20000, "{}", "AgEAAA"]:
        with pytest.raises(InvalidToken):
            await alice.verify(garbage)


# -- refresh -------------------------------------------------------------------------------


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    alice: Auth, logs: list[dict[str, Any]]
) -> None:
    first = await alice.login("alice", PASSWORD)
    second = await alice.refresh(first.refresh)
    assert second.family == first.family
    assert second.refresh != first.refresh
    await alice.verify(second.access)
    await alice.verify(first.access)  # the old access token lives out its life
    with pytest.raises(RefreshReused):
        await alice.refresh(first.refresh)
    for token in (first.access, second.access):
        with pytest.raises(TokenRevoked, match="family"):
            await alice.verify(token)
    with pytest.raises(TokenRevoked):
        await alice.refresh(second.refresh)  # the thief's copy is dead too
    assert [e for e in logs if e["event"] == "refresh_token_reused"]
    with pytest.raises(InvalidToken, match="access token"):
        await alice.refresh(second.access)


async def test_two_refreshes_at_once_one_wins_and_the_family_is_revoked(alice: Auth) -> None:
    pair = await alice.login("alice", PASSWORD)
    results = await asyncio.gather(
        alice.refresh(pair.refresh), alice.refresh(pair.refresh), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["RefreshReused", "TokenPair"]
    [winner] = [r for r in results if isinstance(r, TokenPair)]
    with pytest.raises(TokenRevoked):  # a reuse, even a racing one, ends the family
        await alice.verify(winner.access)
    rows = await alice.verifier()
    state = await rows.state(codec.decode(pair.refresh).identifier[6:].decode(), fresh=True)
    assert state.used_at is not None


async def test_a_refresh_takes_the_roles_as_they_are_now(alice: Auth) -> None:
    pair = await alice.login("alice", PASSWORD)
    await alice.put_role("writer", ["chars:write"])
    await alice.assign_role("alice", "writer")
    with pytest.raises(PermissionDenied):  # minted before: what it had then
        await alice.verify(pair.access, permissions={"chars:write"})
    fresh = await alice.refresh(pair.refresh)
    await alice.verify(fresh.access, permissions={"chars:write", "chars:read"})


# -- revocation ----------------------------------------------------------------------------


async def test_logout_and_revocation_by_token_user_and_family(alice: Auth) -> None:
    one, two, three = [await alice.login("alice", PASSWORD) for _ in range(3)]
    await alice.logout(one.access)
    with pytest.raises(TokenRevoked):
        await alice.verify(one.access)
    with pytest.raises(TokenRevoked):
        await alice.refresh(one.refresh)
    await alice.verify(two.access)  # other logins are untouched
    await alice.revoke_token(two.access)
    with pytest.raises(TokenRevoked, match="it was revoked"):
        await alice.verify(two.access)
    pair = await alice.refresh(two.refresh)  # only that token: the refresh still works
    assert await alice.revoke_family(pair.family) is True
    with pytest.raises(TokenRevoked):
        await alice.verify(pair.access)
    assert await alice.revoke_user("alice") >= 1
    with pytest.raises(TokenRevoked):
        await alice.verify(three.access)
    await alice.logout(three.access)  # logging out a revoked token is harmless


async def test_a_new_password_revokes_every_token(alice: Auth) -> None:
    pair = await alice.login("alice", PASSWORD)
    assert await alice.set_password("alice", "another good password") == 1
    with pytest.raises(TokenRevoked):
        await alice.verify(pair.access)
    with pytest.raises(LoginFailed):
        await alice.login("alice", PASSWORD)
    await alice.login("alice", "another good password")


async def test_root_keys_rotate_and_retire(alice: Auth, node: Node) -> None:
    pair = await alice.login("alice", PASSWORD)
    await alice.rotate_root_key(pair.family)  # a new key; the old one stays valid
    await alice.verify(pair.access)
    fresh = await alice.refresh(pair.refresh)
    assert codec.decode(fresh.access).signature != codec.decode(pair.access).signature
    await alice.verify(fresh.access)
    keys = (
        await Data(node)
        .database()
        .fetch(
            "SELECT kind, key_id FROM auth_tokens WHERE family_id = $1 ORDER BY created_at",
            pair.family,
        )
    )
    assert len({row["key_id"] for row in keys}) == 2  # the refreshed pair is on the new key
    await alice.rotate_root_key(pair.family, retire=True)
    for token in (pair.access, fresh.access):
        with pytest.raises(TokenRevoked, match="root key was retired"):
            await alice.verify(token)
    with pytest.raises(UnknownToken):
        await alice.rotate_root_key("no-such-family")


async def test_root_keys_are_stored_wrapped_never_in_the_clear(alice: Auth, node: Node) -> None:
    pair = await alice.login("alice", PASSWORD)
    rows = (
        await Data(node)
        .database()
        .fetch(
            "SELECT wrapped FROM auth_root_keys k JOIN auth_families f ON f.id = k.family_id "
            "WHERE f.id = $1",
            pair.family,
        )
    )
    [row] = rows
    wrapped = bytes(row["wrapped"])
    verifier = await alice.verifier()
    state = await verifier.state(codec.decode(pair.access).identifier[6:].decode())
    root_key = await verifier.root_key(state)
    assert len(root_key) == 32
    assert root_key not in wrapped


# -- MFA -----------------------------------------------------------------------------------


def wrong_code(secret: str) -> str:
    """A six-digit code no step near now accepts."""
    now = time.time()
    valid = {totp.code_at(secret, now + 30 * step) for step in range(-2, 3)}
    return next(code for code in ("000000", "111111", "222222") if code not in valid)


async def test_mfa_enrol_confirm_login_replay_and_recovery_codes(alice: Auth) -> None:
    enrolment = await alice.enroll_mfa("alice")
    assert enrolment.uri.startswith("otpauth://totp/Aria:alice?")
    with pytest.raises(MfaFailed):
        await alice.confirm_mfa("alice", wrong_code(enrolment.secret))
    now = time.time()
    codes = await alice.confirm_mfa("alice", totp.code_at(enrolment.secret, now - 30))
    assert len(codes) == 10
    assert len(set(codes)) == 10
    with pytest.raises(MfaRequired):
        await alice.login("alice", PASSWORD)
    code = totp.code_at(enrolment.secret, time.time())
    pair = await alice.login("alice", PASSWORD, code=code)
    assert (await alice.verify(pair.access)).mfa is True
    with pytest.raises(MfaFailed):  # the same code again: a replay
        await alice.login("alice", PASSWORD, code=code)
    with pytest.raises(MfaFailed):
        await alice.login("alice", PASSWORD, code="12345")
    await alice.login("alice", PASSWORD, code=codes[0])
    with pytest.raises(MfaFailed, match="recovery code"):
        await alice.login("alice", PASSWORD, code=codes[0])  # single use
    await alice.login("alice", PASSWORD, code=codes[1].upper())  # normalised
    with pytest.raises(AuthConflict, match="already has MFA"):
        await alice.enroll_mfa("alice")
    [info] = await alice.users()
    assert info.mfa is True
    await alice.disable_mfa("alice")
    await alice.login("alice", PASSWORD)


async def test_turning_mfa_on_logs_out_the_sessions_without_it(alice: Auth) -> None:
    before = await alice.login("alice", PASSWORD)
    enrolment = await alice.enroll_mfa("alice")
    await alice.confirm_mfa("alice", totp.code_at(enrolment.secret, time.time()))
    with pytest.raises(TokenRevoked):
        await alice.verify(before.access)


# -- throttling ----------------------------------------------------------------------------


async def test_failed_logins_lock_the_user_out_and_the_source(alice: Auth) -> None:
    await alice.create_user("bob", PASSWORD)
    for _ in range(5):
        with pytest.raises(LoginFailed):
            await alice.login("alice", "wrong wrong wrong", source="10.9.9.9")
    with pytest.raises(LoginThrottled) as caught:
        await alice.login("alice", PASSWORD, source="10.1.1.1")  # even the right password
    assert 0 < caught.value.retry_after <= 60
    with pytest.raises(LoginThrottled):  # the source is locked for every user
        await alice.login("bob", PASSWORD, source="10.9.9.9")
    await alice.login("bob", PASSWORD, source="10.2.2.2")


async def test_the_user_lockout_is_kept_in_the_database(alice: Auth, node: Node) -> None:
    for _ in range(5):
        with pytest.raises(LoginFailed):
            await alice.login("alice", "wrong wrong wrong", source=f"10.0.0.{_}")
    row = (
        await Data(node)
        .database()
        .fetchrow("SELECT failed_logins, locked_until FROM auth_users WHERE id = 'alice'")
    )
    assert row is not None
    assert row["failed_logins"] == 5
    assert row["locked_until"] > time.time()


# -- third-party caveats -------------------------------------------------------------------


async def test_third_party_caveats_are_discharged_by_aria_auth(alice: Auth) -> None:
    pair = await alice.login("alice", PASSWORD)
    await alice.create_user("bob", PASSWORD)
    bob = await alice.login("bob", PASSWORD)
    guarded = await alice.third_party_caveat(pair.access, "role = reader")
    [caveat] = [c for c in codec.decode(guarded).caveats if not c.first_party]
    assert b"reader" not in caveat.id  # the condition is sealed
    with pytest.raises(DischargeError, match="no discharge"):
        await alice.verify(guarded)
    discharge = await alice.discharge(caveat.id, pair.access)
    with pytest.raises(DischargeError, match="prepared"):
        await alice.verify(guarded, discharges=[discharge])  # not bound
    bound = macaroons.prepare_for_request(guarded, discharge)
    await alice.verify(guarded, permissions={"chars:read"}, discharges=[bound])
    with pytest.raises(DischargeError, match="no caveat asked"):
        await alice.verify(pair.access, discharges=[bound])  # an unused discharge
    with pytest.raises(PermissionDenied, match="role = reader"):
        await alice.discharge(caveat.id, bob.access)  # bob is no reader
    with pytest.raises(InvalidToken):
        await alice.discharge(b"aria-tp1:forged", pair.access)
    with pytest.raises(ValueError, match="condition"):
        await alice.third_party_caveat(pair.access, "admin = yes")


async def test_a_discharge_expires(alice: Auth, node: Node) -> None:
    pair = await alice.login("alice", PASSWORD)
    guarded = await alice.third_party_caveat(pair.access, "user = alice")
    [caveat] = [c for c in codec.decode(guarded).caveats if not c.first_party]
    discharge = await alice.discharge(caveat.id, pair.access)
    stale = macaroons.attenuate(discharge, [cv.time_before(time.time() - 1)])
    with pytest.raises(TokenExpired):
        await alice.verify(guarded, discharges=[macaroons.prepare_for_request(guarded, stale)])


# -- service tokens, the actor path, restarts ------------------------------------------------


async def test_a_service_gets_a_token_scoped_to_its_grant(alice: Auth) -> None:
    token, expires = await alice.service_token("aria_storage")
    assert expires > time.time()
    verified = await alice.verify(token, permissions={"aria_data:read"})
    assert (verified.principal, verified.kind) == ("service:aria_storage", "service")
    with pytest.raises(PermissionDenied):
        await alice.verify(token, permissions={"aria_data:write"})
    with pytest.raises(AuthConflict, match="no entry"):
        await alice.service_token("aria_unknown")


async def test_remote_callers_verify_through_the_actor(alice: Auth, node: Node) -> None:
    pair = await alice.login("alice", PASSWORD)
    ref = node.whereis(AUTH_ACTOR)
    assert ref is not None
    verified = await ref.call(VerifyToken(pair.access, permissions=["chars:read"]))
    assert verified.principal == "alice"
    with pytest.raises(PermissionDenied):
        await ref.call(VerifyToken(pair.access, permissions=["chars:write"]))


@pytest.mark.parametrize("how", ["restart", "crash"])
async def test_tokens_outlive_a_restart_of_aria_auth(alice: Auth, node: Node, how: str) -> None:
    pair = await alice.login("alice", PASSWORD)
    before = await alice.verifier()
    ref = node.whereis(AUTH_ACTOR)
    assert ref is not None
    if how == "crash":
        ref._proc.kill()  # no terminate: the supervisor just starts a new one
    else:
        service = node.service("aria_auth")
        assert service is not None
        await service[1].restart("auth")
    await wait_restarted(node, AUTH_ACTOR, ref)
    assert before.closed
    await alice.verify(pair.access)  # a new verifier, the same database
    assert await alice.verifier() is not before
    await alice.refresh(pair.refresh)


async def test_expired_families_are_purged(alice: Auth, node: Node) -> None:
    old, current = await alice.login("alice", PASSWORD), await alice.login("alice", PASSWORD)
    db = Data(node).database()
    await db.execute("UPDATE auth_tokens SET expires_at = 0 WHERE family_id = $1", old.family)
    ref = node.whereis(AUTH_ACTOR)
    assert ref is not None
    await ref.call(Purge())
    assert await db.fetchval("SELECT count(*) FROM auth_families WHERE id = $1", old.family) == 0
    assert await db.fetchval("SELECT count(*) FROM auth_root_keys") == 1  # with its keys
    (await alice.verifier()).forget()
    with pytest.raises(UnknownToken):
        await alice.verify(old.access)
    await alice.verify(current.access)


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"access_lifetime": -1}, ["services.aria_auth", "access_lifetime"]),
        ({"acces_lifetime": 5}, ["services.aria_auth", "acces_lifetime"]),
        ({"roles": {"r": {"permissions": ["bad perm"]}}}, ["services.aria_auth", "bad perm"]),
        ({"services": {"s": {"lifetime": 0}}}, ["services.aria_auth", "lifetime"]),
    ],
)
async def test_bad_settings_stop_the_start_naming_the_key(
    tmp_path: Path, settings: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(StartError) as caught:
        async with auth_node(tmp_path / "state", auth_settings(**settings)):
            pass
    for word in words:
        assert word in str(caught.value)


def test_caveat_unmet_is_the_base_of_the_request_errors() -> None:
    assert issubclass(TokenExpired, CaveatUnmet)
    assert issubclass(PermissionDenied, CaveatUnmet)
