"""How other services and apps use aria_auth: ``Auth(node)``.

::

    auth = Auth(node)
    pair = await auth.login("alice", password, source="10.0.0.7")
    verified = await auth.verify(pair.access, service="aria_storage",
                                 permissions={"chars:read"})
    pair = await auth.refresh(pair.refresh)          # single use
    await auth.logout(pair.access)

``verify`` runs in the caller's task with the node's shared verifier (cached
token states, no message to aria_auth on a cache hit); everything else is a call
to the ``aria_auth.auth`` actor.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, cast

from ..._runtime.errors import NoProcess
from ..._runtime.node import Node
from ..._runtime.ref import ActorRef
from . import caveats as language
from .accounts import Enrollment, UserInfo
from .messages import (
    AssignRole,
    ConfirmMfa,
    CreateUser,
    DeleteRole,
    DeleteUser,
    DisableMfa,
    DisableUser,
    Discharge,
    EnrollMfa,
    GetVerifier,
    ListRoles,
    ListUsers,
    Login,
    Logout,
    PutRole,
    Refresh,
    RevokeFamily,
    RevokeToken,
    RevokeUser,
    RotateRootKey,
    ServiceToken,
    SetPassword,
    ThirdPartyCaveat,
    UnassignRole,
    UserPermissions,
)
from .tokens import TokenPair, TokenVerifier, Verified

AUTH_ACTOR: Final = "aria_auth.auth"
TIMEOUT: Final = 30.0
RENEW_AT: Final = 0.8
"""A service token is renewed once this share of its life has passed."""

_VERIFIERS: weakref.WeakKeyDictionary[Node, TokenVerifier] = weakref.WeakKeyDictionary()
"""Each node's shared verifier, as its aria_auth actor handed it out."""


class Auth:
    """A handle on aria_auth (cheap to make; the verifier is shared per node)."""

    def __init__(self, node: Node, timeout: float = TIMEOUT) -> None:
        self.node = node
        self.timeout = timeout

    def ref(self) -> ActorRef:
        """The aria_auth actor.

        Raises:
            NoProcess: aria_auth is not running on this node.
        """
        ref = self.node.whereis(AUTH_ACTOR)
        if ref is None:
            raise NoProcess(AUTH_ACTOR, "is the aria_auth service running?")
        return ref

    async def _call(self, message: object) -> Any:
        return await self.ref().call(message, timeout=self.timeout)

    # -- users and roles -----------------------------------------------------------------------

    async def create_user(self, user: str, password: str) -> None:
        await self._call(CreateUser(user, password))

    async def set_password(self, user: str, password: str) -> int:
        """A new password; every token of the user is revoked (how many families)."""
        return cast(int, await self._call(SetPassword(user, password)))

    async def disable_user(self, user: str, disabled: bool = True) -> None:
        await self._call(DisableUser(user, disabled))

    async def delete_user(self, user: str) -> None:
        await self._call(DeleteUser(user))

    async def users(self) -> list[UserInfo]:
        return cast(list[UserInfo], await self._call(ListUsers()))

    async def put_role(self, name: str, permissions: Iterable[str], description: str = "") -> None:
        await self._call(PutRole(name, sorted(set(permissions)), description))

    async def delete_role(self, name: str) -> None:
        await self._call(DeleteRole(name))

    async def roles(self) -> dict[str, list[str]]:
        return cast(dict[str, list[str]], await self._call(ListRoles()))

    async def assign_role(self, user: str, role: str) -> None:
        await self._call(AssignRole(user, role))

    async def unassign_role(self, user: str, role: str) -> None:
        await self._call(UnassignRole(user, role))

    async def permissions(self, user: str) -> list[str]:
        """The permissions ``user``'s roles grant now."""
        return cast(list[str], await self._call(UserPermissions(user)))

    # -- logins and tokens ---------------------------------------------------------------------

    async def login(self, user: str, password: str, source: str = "", code: str = "") -> TokenPair:
        return cast(TokenPair, await self._call(Login(user, password, source, code)))

    async def refresh(self, refresh_token: str) -> TokenPair:
        return cast(TokenPair, await self._call(Refresh(refresh_token)))

    async def logout(self, token: str) -> None:
        await self._call(Logout(token))

    async def revoke_token(self, token: str) -> None:
        await self._call(RevokeToken(token))

    async def revoke_user(self, user: str) -> int:
        return cast(int, await self._call(RevokeUser(user)))

    async def revoke_family(self, family: str) -> bool:
        return cast(bool, await self._call(RevokeFamily(family)))

    async def rotate_root_key(self, family: str, retire: bool = False) -> str:
        return cast(str, await self._call(RotateRootKey(family, retire)))

    async def service_token(self, service: str) -> tuple[str, float]:
        """A fresh token for ``service`` and its expiry (see :class:`ServiceCredentials`)."""
        return cast(tuple[str, float], await self._call(ServiceToken(service)))

    async def verifier(self) -> TokenVerifier:
        """The node's shared verifier (asked anew after aria_auth restarted)."""
        cached = _VERIFIERS.get(self.node)
        if cached is None or cached.closed:
            cached = cast(TokenVerifier, await self._call(GetVerifier()))
            _VERIFIERS[self.node] = cached
        return cached

    async def verify(
        self,
        token: str,
        *,
        service: str = "",
        permissions: Iterable[str] = (),
        resources: Mapping[str, str] | None = None,
        confined: Mapping[str, str] | None = None,
        discharges: Sequence[str] = (),
    ) -> Verified:
        """Check an access (or service) token for a request; who it is and what it grants.

        Raises:
            InvalidToken, InvalidSignature, UnknownToken, TokenRevoked, CaveatUnmet
            (TokenExpired, PermissionDenied...), DischargeError: see :mod:`.errors`.
        """
        request = language.Request(
            service=service,
            permissions=frozenset(permissions),
            resources=dict(resources or {}),
            confined=dict(confined or {}),
        )
        return await (await self.verifier()).verify(token, request, discharges)

    # -- MFA -----------------------------------------------------------------------------------

    async def enroll_mfa(self, user: str) -> Enrollment:
        return cast(Enrollment, await self._call(EnrollMfa(user)))

    async def confirm_mfa(self, user: str, code: str) -> list[str]:
        """Turn MFA on; the recovery codes, shown this once."""
        return cast(list[str], await self._call(ConfirmMfa(user, code)))

    async def disable_mfa(self, user: str) -> None:
        await self._call(DisableMfa(user))

    # -- third-party caveats -------------------------------------------------------------------

    async def third_party_caveat(self, token: str, condition: str) -> str:
        """``token`` with a caveat aria_auth discharges when ``condition`` holds for
        the holder (``user = U``, ``role = R``, ``mfa = 1``)."""
        return cast(str, await self._call(ThirdPartyCaveat(token, condition)))

    async def discharge(self, caveat_id: bytes, access_token: str) -> str:
        """A discharge for ``caveat_id`` (bind it with ``prepare_for_request``)."""
        return cast(str, await self._call(Discharge(caveat_id, access_token)))


class ServiceCredentials:
    """A service's own token, renewed before it expires.

    ::

        credentials = ServiceCredentials(node, "aria_storage")
        token = await credentials.token()       # cached until 80% of its life
    """

    def __init__(self, node: Node, service: str) -> None:
        self.auth = Auth(node)
        self.service = service
        self._token: str | None = None
        self._renew_at = 0.0

    async def token(self) -> str:
        now = time.time()
        if self._token is None or now >= self._renew_at:
            token, expires = await self.auth.service_token(self.service)
            self._token, self._renew_at = token, now + (expires - now) * RENEW_AT
        return self._token
