"""aria_auth's tables in aria_data: users, roles, token families, root keys, tokens, MFA.

Plain SQL with ``$1`` placeholders, the same on SQLite and PostgreSQL. Every
change that must be decided once across nodes (a refresh token used, a TOTP step
consumed, a recovery code spent, a failed login counted) is one conditional
``UPDATE`` whose row count says who won, so two nodes sharing the database never
both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from ..data.api import Connection, Row, affected
from .errors import AuthConflict

MIGRATIONS: Final = Path(__file__).resolve().parent / "sql"

TokenKind = Literal["access", "refresh", "service"]


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    password_hash: str
    disabled: bool
    failed_logins: int
    locked_until: float
    created_at: float


@dataclass(frozen=True, slots=True)
class TokenState:
    """A token with what its validity depends on (one row of a join)."""

    id: str
    kind: TokenKind
    family_id: str
    principal: str
    family_kind: str
    key_id: str
    wrapped_key: bytes
    expires_at: float
    used_at: float | None
    revoked_at: float | None
    family_revoked_at: float | None
    key_retired_at: float | None
    user_disabled: bool
    mfa: bool

    def revoked(self) -> str | None:
        """Why the token no longer counts, or None."""
        if self.family_revoked_at is not None:
            return "its family was revoked"
        if self.revoked_at is not None:
            return "it was revoked"
        if self.key_retired_at is not None:
            return "its root key was retired"
        if self.user_disabled:
            return "its user is disabled"
        return None


@dataclass(frozen=True, slots=True)
class MfaRow:
    user_id: str
    wrapped_secret: bytes
    confirmed: bool
    last_step: int | None


def _user(row: Row) -> UserRow:
    return UserRow(
        str(row["id"]),
        str(row["password_hash"]),
        bool(row["disabled"]),
        int(row["failed_logins"]),
        float(row["locked_until"]),
        float(row["created_at"]),
    )


class AuthStore:
    """The SQL of aria_auth over one database connection (or transaction)."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    # -- users ---------------------------------------------------------------------------------

    async def create_user(self, user_id: str, password_hash: str, now: float) -> None:
        """Raises: AuthConflict: the user exists."""
        status = await self.db.execute(
            "INSERT INTO auth_users (id, password_hash, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (id) DO NOTHING",
            user_id,
            password_hash,
            now,
        )
        if not affected(status):
            raise AuthConflict(f"user {user_id!r} already exists")

    async def user(self, user_id: str) -> UserRow | None:
        row = await self.db.fetchrow("SELECT * FROM auth_users WHERE id = $1", user_id)
        return _user(row) if row is not None else None

    async def users(self) -> list[UserRow]:
        return [_user(row) for row in await self.db.fetch("SELECT * FROM auth_users ORDER BY id")]

    async def set_password(self, user_id: str, password_hash: str) -> None:
        await self._one(
            "UPDATE auth_users SET password_hash = $2 WHERE id = $1",
            user_id,
            password_hash,
            what=f"user {user_id!r}",
        )

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        await self._one(
            "UPDATE auth_users SET disabled = $2 WHERE id = $1",
            user_id,
            int(disabled),
            what=f"user {user_id!r}",
        )

    async def delete_user(self, user_id: str) -> None:
        await self._one("DELETE FROM auth_users WHERE id = $1", user_id, what=f"user {user_id!r}")

    async def login_failed(
        self, user_id: str, now: float, max_failures: int, lockout: float
    ) -> float:
        """Count a failed login; the user's ``locked_until`` afterwards (a lockout of
        ``lockout`` seconds starts at every ``max_failures``-th failure in a row)."""
        await self.db.execute(
            "UPDATE auth_users SET failed_logins = failed_logins + 1, "
            "locked_until = CASE WHEN (failed_logins + 1) % $2 = 0 THEN $3 ELSE locked_until END "
            "WHERE id = $1",
            user_id,
            max_failures,
            now + lockout,
        )
        value = await self.db.fetchval("SELECT locked_until FROM auth_users WHERE id = $1", user_id)
        return float(value or 0.0)

    async def login_succeeded(self, user_id: str) -> None:
        await self.db.execute(
            "UPDATE auth_users SET failed_logins = 0 WHERE id = $1 AND failed_logins <> 0", user_id
        )

    # -- roles ---------------------------------------------------------------------------------

    async def put_role(
        self, name: str, permissions: list[str], description: str, now: float
    ) -> None:
        await self.db.execute(
            "INSERT INTO auth_roles (name, permissions, description, created_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET "
            "permissions = excluded.permissions, description = excluded.description",
            name,
            " ".join(sorted(set(permissions))),
            description,
            now,
        )

    async def add_role_if_missing(
        self, name: str, permissions: list[str], description: str, now: float
    ) -> bool:
        status = await self.db.execute(
            "INSERT INTO auth_roles (name, permissions, description, created_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
            name,
            " ".join(sorted(set(permissions))),
            description,
            now,
        )
        return bool(affected(status))

    async def role(self, name: str) -> tuple[list[str], str] | None:
        row = await self.db.fetchrow(
            "SELECT permissions, description FROM auth_roles WHERE name = $1", name
        )
        if row is None:
            return None
        return _split(row["permissions"]), str(row["description"])

    async def roles(self) -> dict[str, list[str]]:
        rows = await self.db.fetch("SELECT name, permissions FROM auth_roles ORDER BY name")
        return {str(row["name"]): _split(row["permissions"]) for row in rows}

    async def delete_role(self, name: str) -> None:
        await self._one("DELETE FROM auth_roles WHERE name = $1", name, what=f"role {name!r}")

    async def assign(self, user_id: str, role: str) -> None:
        if await self.user(user_id) is None:
            raise AuthConflict(f"no user {user_id!r}")
        if await self.role(role) is None:
            raise AuthConflict(f"no role {role!r}")
        await self.db.execute(
            "INSERT INTO auth_user_roles (user_id, role) VALUES ($1, $2) "
            "ON CONFLICT (user_id, role) DO NOTHING",
            user_id,
            role,
        )

    async def unassign(self, user_id: str, role: str) -> None:
        await self._one(
            "DELETE FROM auth_user_roles WHERE user_id = $1 AND role = $2",
            user_id,
            role,
            what=f"role {role!r} of user {user_id!r}",
        )

    async def user_roles(self, user_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT role FROM auth_user_roles WHERE user_id = $1 ORDER BY role", user_id
        )
        return [str(row["role"]) for row in rows]

    async def user_permissions(self, user_id: str) -> frozenset[str]:
        """The union of the permissions of the user's roles, now."""
        rows = await self.db.fetch(
            "SELECT r.permissions FROM auth_user_roles ur JOIN auth_roles r ON r.name = ur.role "
            "WHERE ur.user_id = $1",
            user_id,
        )
        return frozenset(name for row in rows for name in _split(row["permissions"]))

    # -- families, root keys, tokens -----------------------------------------------------------

    async def create_family(
        self, family_id: str, principal: str, kind: str, mfa: bool, now: float
    ) -> None:
        await self.db.execute(
            "INSERT INTO auth_families (id, principal, kind, mfa, created_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            family_id,
            principal,
            kind,
            int(mfa),
            now,
        )

    async def family(self, family_id: str) -> Row | None:
        return await self.db.fetchrow("SELECT * FROM auth_families WHERE id = $1", family_id)

    async def revoke_family(self, family_id: str, reason: str, now: float) -> bool:
        status = await self.db.execute(
            "UPDATE auth_families SET revoked_at = $2, revoked_reason = $3 "
            "WHERE id = $1 AND revoked_at IS NULL",
            family_id,
            now,
            reason,
        )
        return bool(affected(status))

    async def revoke_principal(self, principal: str, reason: str, now: float) -> int:
        status = await self.db.execute(
            "UPDATE auth_families SET revoked_at = $2, revoked_reason = $3 "
            "WHERE principal = $1 AND revoked_at IS NULL",
            principal,
            now,
            reason,
        )
        return affected(status)

    async def add_key(self, key_id: str, family_id: str, wrapped: bytes, now: float) -> None:
        await self.db.execute(
            "INSERT INTO auth_root_keys (id, family_id, wrapped, created_at) "
            "VALUES ($1, $2, $3, $4)",
            key_id,
            family_id,
            wrapped,
            now,
        )

    async def current_key(self, family_id: str) -> tuple[str, bytes, float] | None:
        """The family's newest root key that is not retired: (id, wrapped, created_at)."""
        row = await self.db.fetchrow(
            "SELECT id, wrapped, created_at FROM auth_root_keys "
            "WHERE family_id = $1 AND retired_at IS NULL ORDER BY created_at DESC, id LIMIT 1",
            family_id,
        )
        if row is None:
            return None
        return str(row["id"]), bytes(row["wrapped"]), float(row["created_at"])

    async def retire_keys(self, family_id: str, keep: str | None, now: float) -> int:
        status = await self.db.execute(
            "UPDATE auth_root_keys SET retired_at = $3 "
            "WHERE family_id = $1 AND retired_at IS NULL AND id <> $2",
            family_id,
            keep or "",
            now,
        )
        return affected(status)

    async def add_token(
        self,
        token_id: str,
        family_id: str,
        key_id: str,
        kind: TokenKind,
        expires_at: float,
        now: float,
    ) -> None:
        await self.db.execute(
            "INSERT INTO auth_tokens (id, family_id, key_id, kind, expires_at, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            token_id,
            family_id,
            key_id,
            kind,
            expires_at,
            now,
        )

    async def token(self, token_id: str) -> TokenState | None:
        row = await self.db.fetchrow(
            "SELECT t.id, t.kind, t.family_id, t.key_id, t.expires_at, t.used_at, t.revoked_at, "
            "f.principal, f.kind AS family_kind, f.revoked_at AS family_revoked_at, f.mfa, "
            "k.wrapped, k.retired_at, COALESCE(u.disabled, 0) AS disabled "
            "FROM auth_tokens t JOIN auth_families f ON f.id = t.family_id "
            "JOIN auth_root_keys k ON k.id = t.key_id "
            "LEFT JOIN auth_users u ON u.id = f.principal AND f.kind = 'user' "
            "WHERE t.id = $1",
            token_id,
        )
        if row is None:
            return None
        return TokenState(
            id=str(row["id"]),
            kind=row["kind"],
            family_id=str(row["family_id"]),
            principal=str(row["principal"]),
            family_kind=str(row["family_kind"]),
            key_id=str(row["key_id"]),
            wrapped_key=bytes(row["wrapped"]),
            expires_at=float(row["expires_at"]),
            used_at=_maybe(row["used_at"]),
            revoked_at=_maybe(row["revoked_at"]),
            family_revoked_at=_maybe(row["family_revoked_at"]),
            key_retired_at=_maybe(row["retired_at"]),
            user_disabled=bool(row["disabled"]),
            mfa=bool(row["mfa"]),
        )

    async def use_refresh(self, token_id: str, now: float) -> bool:
        """Mark a refresh token used; False if it already was (or is revoked)."""
        status = await self.db.execute(
            "UPDATE auth_tokens SET used_at = $2 "
            "WHERE id = $1 AND kind = 'refresh' AND used_at IS NULL AND revoked_at IS NULL",
            token_id,
            now,
        )
        return bool(affected(status))

    async def revoke_token(self, token_id: str, now: float) -> bool:
        status = await self.db.execute(
            "UPDATE auth_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            token_id,
            now,
        )
        return bool(affected(status))

    async def purge(self, now: float, grace: float) -> int:
        """Delete families whose every token expired more than ``grace`` seconds ago."""
        status = await self.db.execute(
            "DELETE FROM auth_families WHERE id IN (SELECT family_id FROM auth_tokens "
            "GROUP BY family_id HAVING MAX(expires_at) < $1)",
            now - grace,
        )
        return affected(status)

    # -- MFA -----------------------------------------------------------------------------------

    async def put_mfa(self, user_id: str, wrapped_secret: bytes, now: float) -> None:
        """A new, unconfirmed TOTP secret (replacing an unconfirmed one).

        Raises: AuthConflict: MFA is already confirmed for the user.
        """
        status = await self.db.execute(
            "INSERT INTO auth_mfa (user_id, wrapped_secret, confirmed, created_at) "
            "VALUES ($1, $2, 0, $3) ON CONFLICT (user_id) DO UPDATE SET "
            "wrapped_secret = excluded.wrapped_secret, created_at = excluded.created_at, "
            "last_step = NULL WHERE auth_mfa.confirmed = 0",
            user_id,
            wrapped_secret,
            now,
        )
        if not affected(status):
            raise AuthConflict(f"user {user_id!r} already has MFA (remove it first)")

    async def mfa(self, user_id: str) -> MfaRow | None:
        row = await self.db.fetchrow("SELECT * FROM auth_mfa WHERE user_id = $1", user_id)
        if row is None:
            return None
        step = row["last_step"]
        return MfaRow(
            str(row["user_id"]),
            bytes(row["wrapped_secret"]),
            bool(row["confirmed"]),
            int(step) if step is not None else None,
        )

    async def use_step(self, user_id: str, step: int, confirm: bool = False) -> bool:
        """Consume TOTP step ``step``; False if it (or a later one) was used before."""
        status = await self.db.execute(
            "UPDATE auth_mfa SET last_step = $2, confirmed = CASE WHEN $3 = 1 THEN 1 "
            "ELSE confirmed END WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
            user_id,
            step,
            int(confirm),
        )
        return bool(affected(status))

    async def delete_mfa(self, user_id: str) -> None:
        await self.db.execute("DELETE FROM auth_mfa WHERE user_id = $1", user_id)
        await self.db.execute("DELETE FROM auth_recovery_codes WHERE user_id = $1", user_id)

    async def replace_recovery_codes(self, user_id: str, hashes: list[str]) -> None:
        await self.db.execute("DELETE FROM auth_recovery_codes WHERE user_id = $1", user_id)
        await self.db.executemany(
            "INSERT INTO auth_recovery_codes (user_id, code_hash) VALUES ($1, $2)",
            [(user_id, code_hash) for code_hash in hashes],
        )

    async def unused_recovery_codes(self, user_id: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT code_hash FROM auth_recovery_codes WHERE user_id = $1 AND used_at IS NULL "
            "ORDER BY code_hash",
            user_id,
        )
        return [str(row["code_hash"]) for row in rows]

    async def use_recovery_code(self, user_id: str, code_hash: str, now: float) -> bool:
        status = await self.db.execute(
            "UPDATE auth_recovery_codes SET used_at = $3 "
            "WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
            user_id,
            code_hash,
            now,
        )
        return bool(affected(status))

    # -- helpers -------------------------------------------------------------------------------

    async def _one(self, sql: str, *args: Any, what: str) -> None:
        if not affected(await self.db.execute(sql, *args)):
            raise AuthConflict(f"no {what}")


def _split(text: Any) -> list[str]:
    return [name for name in str(text or "").split(" ") if name]


def _maybe(value: Any) -> float | None:
    return float(value) if value is not None else None
