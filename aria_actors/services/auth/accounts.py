"""Users, roles, logins and MFA: the account half of aria_auth (no actor here).

- **Passwords** are hashed with argon2id (:mod:`.passwords`) in a worker thread. A
  login for a user that does not exist spends the same time on a dummy hash, and
  every failure says only "wrong user name or password".
- **Throttling**: failures are counted per user and per source (in memory, with
  doubling lockouts, :mod:`.throttle`) and per user in the database
  (``locked_until``), so a user's lockout holds on every node.
- **RBAC**: a role is a named set of permissions; a token carries the union of
  its user's roles' permissions *at mint time* (a refresh takes them anew).
- **MFA**: TOTP (RFC 6238) whose secret is a data key from aria_security (only
  its wrapped form is stored); a step can be used once (a conditional ``UPDATE``
  across nodes); ten single-use recovery codes, stored as hashes.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import anyio
import structlog

from ..data.client import DatabaseProxy
from ..security.client import Secrets
from . import caveats as language
from . import totp
from .errors import (
    AuthConflict,
    LoginFailed,
    LoginThrottled,
    MfaFailed,
    MfaRequired,
)
from .passwords import Passwords, check_policy
from .settings import AuthSettings
from .store import AuthStore, UserRow
from .throttle import Throttle
from .tokens import TokenMinter, TokenPair

logger = structlog.get_logger("aria_auth")


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A TOTP secret waiting for its first code (``ConfirmMfa``)."""

    user: str
    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class UserInfo:
    user: str
    disabled: bool
    roles: list[str]
    mfa: bool
    created_at: float


def check_user(user: str) -> str:
    if not language.NAME.fullmatch(user) or user.startswith("service:"):
        raise ValueError(f"a user name must match {language.NAME.pattern}: {user!r}")
    return user


class Accounts:
    """Users, roles, logins and MFA over aria_data and aria_security."""

    def __init__(
        self,
        db: DatabaseProxy,
        secrets_client: Secrets,
        settings: AuthSettings,
        minter: TokenMinter,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.secrets = secrets_client
        self.settings = settings
        self.minter = minter
        self.wall = wall
        self.passwords = Passwords(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost,
            parallelism=settings.argon2_parallelism,
            # each hash takes memory_cost KiB: bound how many run at once
            limiter=anyio.CapacityLimiter(max(2, os.cpu_count() or 2)),
        )
        self.throttle = Throttle(
            max_failures=settings.max_failures,
            window=settings.failure_window,
            lockout=settings.lockout,
            max_lockout=settings.max_lockout,
            clock=clock,
        )

    @property
    def store(self) -> AuthStore:
        return AuthStore(self.db)

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, user: str, password: str) -> None:
        """Raises: ValueError (a bad name or a weak password), AuthConflict (exists)."""
        check_user(user)
        check_policy(password)
        await self.store.create_user(user, await self.passwords.hash(password), self.wall())
        logger.info("user_created", user=user)

    async def set_password(self, user: str, password: str) -> int:
        """A new password; every token of the user is revoked (how many families)."""
        check_policy(password)
        await self.store.set_password(user, await self.passwords.hash(password))
        return await self.minter.revoke_principal(user, "password changed")

    async def disable_user(self, user: str, disabled: bool) -> None:
        await self.store.set_disabled(user, disabled)
        self.minter.verifier.forget()
        logger.info("user_disabled" if disabled else "user_enabled", user=user)

    async def delete_user(self, user: str) -> None:
        await self.minter.revoke_principal(user, "user deleted")
        await self.store.delete_user(user)

    async def users(self) -> list[UserInfo]:
        infos = []
        for row in await self.store.users():
            mfa = await self.store.mfa(row.id)
            infos.append(
                UserInfo(
                    row.id,
                    row.disabled,
                    await self.store.user_roles(row.id),
                    bool(mfa and mfa.confirmed),
                    row.created_at,
                )
            )
        return infos

    # -- roles ---------------------------------------------------------------------------------

    async def put_role(self, name: str, permissions: list[str], description: str) -> None:
        """Create or change a role (tokens minted before keep what they had)."""
        if not language.NAME.fullmatch(name):
            raise ValueError(f"a role name must match {language.NAME.pattern}: {name!r}")
        language.permissions(permissions)  # ValueError for a bad permission name
        await self.store.put_role(name, permissions, description, self.wall())

    async def ensure_roles(self) -> list[str]:
        """The roles of the settings that did not exist yet, created."""
        made = []
        for name, role in self.settings.roles.items():
            if await self.store.add_role_if_missing(
                name, role.permissions, role.description, self.wall()
            ):
                made.append(name)
        return made

    async def permissions(self, user: str) -> frozenset[str]:
        return await self.store.user_permissions(user)

    # -- logins --------------------------------------------------------------------------------

    async def login(self, user: str, password: str, source: str = "", code: str = "") -> TokenPair:
        """A token pair for ``user``.

        Raises:
            LoginThrottled: too many failures for this user or source (``retry_after``).
            LoginFailed: wrong user name or password (or a disabled user).
            MfaRequired: the password was right; the user has MFA and gave no code.
            MfaFailed: the code was wrong, outside the window, or used before.
        """
        keys = [f"user:{user}"] + ([f"source:{source}"] if source else [])
        self.throttle.check_all(keys)
        now = self.wall()
        row = await self.store.user(user) if language.NAME.fullmatch(user) else None
        if row is not None and row.locked_until > now:
            raise LoginThrottled(
                "too many failed logins for this user; try again later",
                row.locked_until - now,
            )
        if row is None or row.disabled:
            await self.passwords.verify_dummy(password)
            await self._failed(keys, None)
        if not await self.passwords.verify(row.password_hash, password):
            await self._failed(keys, row)
        mfa = await self.store.mfa(user)
        with_mfa = bool(mfa and mfa.confirmed)
        if with_mfa:
            if not code:
                raise MfaRequired("this user needs a TOTP or recovery code as well")
            try:
                await self._second_factor(user, code)
            except MfaFailed:
                await self._count_failure(keys, row)
                raise
        self.throttle.success(keys[0])
        await self.store.login_succeeded(user)
        if self.passwords.needs_rehash(row.password_hash):
            await self.store.set_password(user, await self.passwords.hash(password))
        permissions = await self.store.user_permissions(user)
        family, key_id, root_key = await self.minter.new_family(user, "user", mfa=with_mfa)
        pair = await self.minter.pair(family, key_id, root_key, user, permissions)
        logger.info("login", user=user, source=source, family=family, mfa=with_mfa)
        return pair

    async def _failed(self, keys: list[str], row: UserRow | None) -> NoReturn:
        await self._count_failure(keys, row)
        raise LoginFailed("wrong user name or password")

    async def _count_failure(self, keys: list[str], row: UserRow | None) -> None:
        for key in keys:
            self.throttle.failure(key)
        if row is not None:
            await self.store.login_failed(
                row.id, self.wall(), self.settings.max_failures, self.settings.lockout
            )
        logger.warning("login_failed", user=keys[0][5:], sources=keys[1:])

    # -- MFA -----------------------------------------------------------------------------------

    async def enroll_mfa(self, user: str) -> Enrollment:
        """A new TOTP secret for ``user`` (unconfirmed until :meth:`confirm_mfa`).

        Raises:
            AuthConflict: no such user, or MFA is already confirmed.
        """
        if await self.store.user(user) is None:
            raise AuthConflict(f"no user {user!r}")
        key, wrapped = await self.secrets.new_data_key()
        await self.store.put_mfa(user, wrapped, self.wall())
        secret = _totp_secret(key)
        uri = totp.provisioning_uri(secret, user, issuer="Aria")
        return Enrollment(user, secret, uri)

    async def confirm_mfa(self, user: str, code: str) -> list[str]:
        """Turn MFA on with a first valid code; the recovery codes (shown once).

        Raises:
            AuthConflict: no enrolment waiting; MfaFailed: the code is wrong.
        """
        mfa = await self.store.mfa(user)
        if mfa is None or mfa.confirmed:
            raise AuthConflict(f"no MFA enrolment waiting for {user!r}")
        secret = _totp_secret(await self.secrets.unwrap_data_key(mfa.wrapped_secret))
        step = totp.verify(
            secret, code, self.wall(), mfa.last_step, window=self.settings.mfa_window
        )
        if not await self.store.use_step(user, step, confirm=True):
            raise MfaFailed("this code was used already")
        codes = totp.new_recovery_codes()
        await self.store.replace_recovery_codes(user, [totp.hash_recovery_code(c) for c in codes])
        await self.minter.revoke_principal(user, "MFA turned on")
        logger.info("mfa_enabled", user=user)
        return codes

    async def disable_mfa(self, user: str) -> None:
        await self.store.delete_mfa(user)
        logger.info("mfa_disabled", user=user)

    async def _second_factor(self, user: str, code: str) -> None:
        """Check a TOTP code (6 digits) or a recovery code; use it up.

        Raises:
            MfaFailed: wrong, replayed, or already used.
        """
        mfa = await self.store.mfa(user)
        assert mfa is not None
        if code.strip().isdigit():
            secret = _totp_secret(await self.secrets.unwrap_data_key(mfa.wrapped_secret))
            step = totp.verify(
                secret, code.strip(), self.wall(), mfa.last_step, window=self.settings.mfa_window
            )
            if not await self.store.use_step(user, step):
                raise MfaFailed("this code was used already")
            return
        hashes = await self.store.unused_recovery_codes(user)
        index = totp.match_recovery_code(code, hashes)
        if index is None or not await self.store.use_recovery_code(
            user, hashes[index], self.wall()
        ):
            raise MfaFailed("wrong or used recovery code")
        logger.warning("recovery_code_used", user=user, left=len(hashes) - 1)


def _totp_secret(key: bytes) -> str:
    """The TOTP secret (base32, 160 bits) made of a data key."""
    return base64.b32encode(key[:20]).decode("ascii").rstrip("=")
