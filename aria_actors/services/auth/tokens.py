"""Token families: minting pairs, verifying with a short cache, refreshing, revoking.

A **family** is one login (or one service's credentials): a root key and the
tokens made with it. Its root key is a data key from aria_security
(``new_data_key``): only the wrapped form is stored (``auth_root_keys``), and the
clear key is kept in memory for ``key_cache`` seconds. Every token has a row in
``auth_tokens``; its identifier is ``aria1:<token id>``, so revoking it, its
family or its user is a row change.

A login mints a **pair**: an access token (``access_lifetime``, the user's
permissions at mint time) and a refresh token (``refresh_lifetime``). A refresh
token is **single-use**: exchanging it marks its row used (a conditional
``UPDATE``) in the transaction that stores the new pair of the same family, so a
failed refresh leaves the old token usable; presenting a used one again revokes
the whole family (:class:`RefreshReused`): whoever holds the other copy, thief or
owner, is logged out. A refresh after ``root_key_max_age`` puts the new pair under
a fresh root key (the old one stays valid for the tokens it made).

:class:`TokenVerifier` is shared by every actor of the node: it caches each
token's state (revoked? retired key? disabled user?) for ``revocation_cache``
seconds and root keys for ``key_cache`` seconds, so a revocation made on another
node sharing the database is honoured within ``revocation_cache`` seconds (at
once on the node that made it).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import structlog

from ..._runtime.ref import ActorRef
from ..data.client import DatabaseProxy
from ..security.client import Secrets
from . import caveats as language
from . import macaroons
from .codec import Token
from .errors import InvalidToken, RefreshReused, TokenRevoked, UnknownToken
from .settings import AuthSettings
from .store import AuthStore, TokenKind, TokenState

logger = structlog.get_logger("aria_auth")

PREFIX: Final = b"aria1:"
CACHE_LIMIT: Final = 100_000


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh returns."""

    access: str
    refresh: str
    access_expires: float
    refresh_expires: float
    family: str
    principal: str


@dataclass(frozen=True, slots=True)
class Verified:
    """A token that passed: who it is for and what it grants."""

    principal: str
    kind: TokenKind
    family: str
    token_id: str
    permissions: frozenset[str] | None
    expires: float | None
    mfa: bool


def new_id() -> str:
    return secrets.token_urlsafe(16)


def identifier(token_id: str) -> bytes:
    return PREFIX + token_id.encode("ascii")


def token_id_of(token: Token) -> str:
    """The row id in a token's identifier.

    Raises:
        InvalidToken: the identifier is not one aria_auth writes.
    """
    raw = token.identifier
    if not raw.startswith(PREFIX) or not 16 <= len(raw) - len(PREFIX) <= 64:
        raise InvalidToken("not a token of aria_auth (unknown identifier)")
    try:
        text = raw[len(PREFIX) :].decode("ascii")
    except UnicodeDecodeError:
        raise InvalidToken("not a token of aria_auth (unknown identifier)") from None
    if not text.replace("-", "").replace("_", "").isalnum():
        raise InvalidToken("not a token of aria_auth (unknown identifier)")
    return text


K = TypeVar("K")
V = TypeVar("V")


class _Ttl(Generic[K, V]):
    """A bounded cache whose entries expire ``ttl`` seconds after they were stored."""

    def __init__(self, ttl: float, clock: Callable[[], float], limit: int = CACHE_LIMIT) -> None:
        self.ttl = ttl
        self.clock = clock
        self.limit = limit
        self.entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if self.clock() - entry[0] >= self.ttl:
            del self.entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self.entries[key] = (self.clock(), value)
        self.entries.move_to_end(key)
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


class TokenVerifier:
    """Verifies tokens for the whole node; see the module documentation.

    ``closed`` turns true when the aria_auth actor that made it stops (or ``owner``,
    that actor, is dead); clients then ask the new one (see :class:`.client.Auth`).
    """

    owner: ActorRef | None = None

    def __init__(
        self,
        db: DatabaseProxy,
        secrets_client: Secrets,
        settings: AuthSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.secrets = secrets_client
        self.settings = settings
        self.states: _Ttl[str, TokenState] = _Ttl(settings.revocation_cache, clock)
        self.keys: _Ttl[str, bytes] = _Ttl(settings.key_cache, clock)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed or (self.owner is not None and not self.owner.is_alive())

    @closed.setter
    def closed(self, value: bool) -> None:
        self._closed = value

    def forget(self) -> None:
        """Drop every cached token state (after a revocation on this node)."""
        self.states.clear()

    async def state(self, token_id: str, fresh: bool = False) -> TokenState:
        """The token's row and what its validity depends on.

        Raises:
            UnknownToken: there is no such token (never minted here, or purged).
        """
        state = None if fresh else self.states.get(token_id)
        if state is None:
            state = await AuthStore(self.db).token(token_id)
            if state is None:
                raise UnknownToken("no such token (never minted here, or purged)")
            self.states.put(token_id, state)
        return state

    async def root_key(self, state: TokenState) -> bytes:
        key = self.keys.get(state.key_id)
        if key is None:
            key = await self.secrets.unwrap_data_key(state.wrapped_key)
            self.keys.put(state.key_id, key)
        return key

    async def identify(self, token: str) -> Verified:
        """Whose ``token`` is: its signature checked, its caveats and revocation not
        (logging out with an expired or revoked token still works).

        Raises:
            InvalidToken, InvalidSignature, UnknownToken: not a genuine token of ours.
        """
        root = macaroons.decode_all(token)[0]
        state = await self.state(token_id_of(root), fresh=True)
        key = await self.root_key(state)

        def unchecked(
            texts: list[bytes], checked: language.Request, who: str | None
        ) -> language.Grant:
            return language.Grant()

        macaroons.verify(root, key, (), None, None, checker=unchecked)
        return Verified(
            state.principal, state.kind, state.family_id, state.id, None, None, state.mfa
        )

    async def verify(
        self,
        token: str,
        request: language.Request,
        discharges: Sequence[str] = (),
        kind: TokenKind | tuple[TokenKind, ...] = ("access", "service"),
        fresh: bool = False,
    ) -> Verified:
        """Check ``token`` (and its discharges) for ``request``.

        Raises:
            InvalidToken: unreadable, not ours, or of the wrong kind (a refresh token
                where an access token belongs); InvalidSignature: forged or altered.
            TokenRevoked: revoked, its family or user revoked, its key retired.
            CaveatUnmet (TokenExpired, PermissionDenied...): a caveat does not hold.
            DischargeError: third-party caveats not properly discharged.
            DatabaseError, SecretsError: the state could not be read (not cached).
        """
        root, bound = macaroons.decode_all(token, discharges)
        state = await self.state(token_id_of(root), fresh=fresh)
        kinds = (kind,) if isinstance(kind, str) else kind
        if state.kind not in kinds:
            raise InvalidToken(f"a {state.kind} token where {' or '.join(kinds)} belongs")
        key = await self.root_key(state)
        principal = state.principal if state.family_kind == "user" else None

        def checker(
            texts: list[bytes], checked: language.Request, who: str | None
        ) -> language.Grant:
            why = state.revoked()
            if why is not None:  # after the signatures: forgeries learn nothing
                raise TokenRevoked(f"the token was revoked: {why}")
            return language.check(texts, checked, who)

        grant = macaroons.verify(root, key, bound, request, principal, checker=checker)
        return Verified(
            principal=state.principal,
            kind=state.kind,
            family=state.family_id,
            token_id=state.id,
            permissions=grant.permissions,
            expires=grant.expires,
            mfa=state.mfa,
        )


class TokenMinter:
    """Makes families and tokens (the writing half; the aria_auth actor owns it)."""

    def __init__(
        self,
        db: DatabaseProxy,
        secrets_client: Secrets,
        settings: AuthSettings,
        verifier: TokenVerifier,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.secrets = secrets_client
        self.settings = settings
        self.verifier = verifier
        self.wall = wall

    async def new_family(
        self, principal: str, kind: str, mfa: bool = False
    ) -> tuple[str, str, bytes]:
        """A family with a fresh root key: (family id, key id, root key)."""
        root_key, wrapped = await self.secrets.new_data_key()
        family_id, key_id = new_id(), new_id()
        now = self.wall()
        async with self.db.transaction() as tx:
            store = AuthStore(tx)
            await store.create_family(family_id, principal, kind, mfa, now)
            await store.add_key(key_id, family_id, wrapped, now)
        self.verifier.keys.put(key_id, root_key)
        return family_id, key_id, root_key

    async def pair(
        self,
        family_id: str,
        key_id: str,
        root_key: bytes,
        principal: str,
        permissions: frozenset[str],
        consume: str | None = None,
    ) -> TokenPair:
        """An access and a refresh token for a user's family.

        With ``consume`` (a refresh token's id), that token is marked used in the
        same transaction that stores the new pair: both happen or neither.

        Raises:
            RefreshReused: ``consume`` was used before (nothing is stored then).
        """
        now = self.wall()
        settings = self.settings
        access_id, refresh_id = new_id(), new_id()
        access_expires = now + settings.access_lifetime
        refresh_expires = now + settings.refresh_lifetime
        async with self.db.transaction() as tx:
            store = AuthStore(tx)
            if consume is not None and not await store.use_refresh(consume, now):
                raise RefreshReused(
                    "this refresh token was already used: its whole family is revoked "
                    "(log in again)"
                )
            await store.add_token(access_id, family_id, key_id, "access", access_expires, now)
            await store.add_token(refresh_id, family_id, key_id, "refresh", refresh_expires, now)
        access = macaroons.mint(
            root_key,
            identifier(access_id),
            [
                language.LANGUAGE,
                language.user(principal),
                language.permissions(permissions),
                language.time_before(access_expires),
            ],
            settings.location,
        )
        refresh = macaroons.mint(
            root_key,
            identifier(refresh_id),
            [language.LANGUAGE, language.user(principal), language.time_before(refresh_expires)],
            settings.location,
        )
        return TokenPair(access, refresh, access_expires, refresh_expires, family_id, principal)

    async def service_token(
        self, service: str, permissions: frozenset[str], lifetime: float
    ) -> tuple[str, float]:
        """A token of its own for ``service`` (principal ``service:<name>``)."""
        family_id, key_id, root_key = await self.new_family(f"service:{service}", "service")
        now = self.wall()
        token_id = new_id()
        expires = now + lifetime
        await AuthStore(self.db).add_token(token_id, family_id, key_id, "service", expires, now)
        token = macaroons.mint(
            root_key,
            identifier(token_id),
            [
                language.LANGUAGE,
                language.permissions(permissions),
                language.time_before(expires),
            ],
            self.settings.location,
        )
        return token, expires

    async def refresh(
        self, token: str, permissions_of: Callable[[str], Awaitable[frozenset[str]]]
    ) -> TokenPair:
        """Exchange a refresh token for a new pair (see the module documentation).

        ``permissions_of(user)`` is awaited for the user's permissions now.

        Raises:
            RefreshReused: the token was exchanged before; its family is revoked.
            TokenRevoked, TokenExpired, InvalidToken...: as :meth:`TokenVerifier.verify`.
        """
        verified = await self.verifier.verify(
            token, language.Request(service="aria_auth"), kind="refresh", fresh=True
        )
        permissions = await permissions_of(verified.principal)
        key_id, root_key = await self._current_key(verified.family, self.wall())
        try:
            return await self.pair(
                verified.family,
                key_id,
                root_key,
                verified.principal,
                permissions,
                consume=verified.token_id,
            )
        except RefreshReused:
            await self.revoke_family(verified.family, "refresh token reused")
            logger.warning(
                "refresh_token_reused", principal=verified.principal, family=verified.family
            )
            raise

    async def _current_key(self, family_id: str, now: float) -> tuple[str, bytes]:
        """The family's root key, or a new one once it is ``root_key_max_age`` old."""
        current = await AuthStore(self.db).current_key(family_id)
        if current is not None and now - current[2] < self.settings.root_key_max_age:
            key = self.verifier.keys.get(current[0])
            if key is None:
                key = await self.secrets.unwrap_data_key(current[1])
                self.verifier.keys.put(current[0], key)
            return current[0], key
        return await self.rotate_key(family_id, retire=False)

    async def rotate_key(self, family_id: str, retire: bool) -> tuple[str, bytes]:
        """A new root key for the family; ``retire`` ends the old keys' tokens now."""
        root_key, wrapped = await self.secrets.new_data_key()
        key_id = new_id()
        now = self.wall()
        async with self.db.transaction() as tx:
            store = AuthStore(tx)
            if await store.family(family_id) is None:
                raise UnknownToken(f"no token family {family_id!r}")
            await store.add_key(key_id, family_id, wrapped, now)
            if retire:
                await store.retire_keys(family_id, key_id, now)
        self.verifier.keys.put(key_id, root_key)
        if retire:
            self.verifier.forget()
        logger.info("root_key_rotated", family=family_id, retired_old=retire)
        return key_id, root_key

    async def revoke_family(self, family_id: str, reason: str) -> bool:
        done = await AuthStore(self.db).revoke_family(family_id, reason, self.wall())
        self.verifier.forget()
        return done

    async def revoke_principal(self, principal: str, reason: str) -> int:
        count = await AuthStore(self.db).revoke_principal(principal, reason, self.wall())
        self.verifier.forget()
        return count

    async def revoke_token(self, token: str) -> str:
        """Revoke one token given as text; its id."""
        root = macaroons.decode_all(token)[0]
        token_id = token_id_of(root)
        await self.verifier.state(token_id, fresh=True)  # UnknownToken if not ours
        await AuthStore(self.db).revoke_token(token_id, self.wall())
        self.verifier.forget()
        return token_id
