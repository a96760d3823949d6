"""The messages of the ``aria_auth.auth`` actor (use :class:`.client.Auth` instead).

Every one is answered; failures come back as :mod:`.errors` (or ``DatabaseError``
/ ``SecretsError`` when a store is down). Administrative messages (users, roles,
revocation) carry no token: inside a node every actor is trusted; the services
that expose them to the network (aria_interface, aria_coordinate) guard them with
the ``auth:admin`` permission.
"""

from __future__ import annotations

import msgspec


class CreateUser(msgspec.Struct, frozen=True, tag=True):
    user: str
    password: str

    def __repr__(self) -> str:
        return f"CreateUser(user={self.user!r}, password=<hidden>)"


class SetPassword(msgspec.Struct, frozen=True, tag=True):
    """Also revokes every token of the user."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"SetPassword(user={self.user!r}, password=<hidden>)"


class DisableUser(msgspec.Struct, frozen=True, tag=True):
    user: str
    disabled: bool = True


class DeleteUser(msgspec.Struct, frozen=True, tag=True):
    user: str


class ListUsers(msgspec.Struct, frozen=True, tag=True):
    pass


class PutRole(msgspec.Struct, frozen=True, tag=True):
    name: str
    permissions: list[str]
    description: str = ""


class DeleteRole(msgspec.Struct, frozen=True, tag=True):
    name: str


class ListRoles(msgspec.Struct, frozen=True, tag=True):
    pass


class AssignRole(msgspec.Struct, frozen=True, tag=True):
    user: str
    role: str


class UnassignRole(msgspec.Struct, frozen=True, tag=True):
    user: str
    role: str


class UserPermissions(msgspec.Struct, frozen=True, tag=True):
    user: str


class Login(msgspec.Struct, frozen=True, tag=True):
    """``source`` names where the attempt came from (an address) for throttling;
    ``code`` is a TOTP or recovery code when the user has MFA."""

    user: str
    password: str
    source: str = ""
    code: str = ""

    def __repr__(self) -> str:
        return f"Login(user={self.user!r}, source={self.source!r}, password=<hidden>)"


class Refresh(msgspec.Struct, frozen=True, tag=True):
    token: str


class Logout(msgspec.Struct, frozen=True, tag=True):
    """Revokes the family of ``token`` (access or refresh)."""

    token: str


class RevokeToken(msgspec.Struct, frozen=True, tag=True):
    token: str


class RevokeUser(msgspec.Struct, frozen=True, tag=True):
    user: str


class RevokeFamily(msgspec.Struct, frozen=True, tag=True):
    family: str


class RotateRootKey(msgspec.Struct, frozen=True, tag=True):
    """A new root key for the family; ``retire`` ends the tokens of the old ones."""

    family: str
    retire: bool = False


class ServiceToken(msgspec.Struct, frozen=True, tag=True):
    """A token of its own for a service configured under ``[services.aria_auth.services]``."""

    service: str


class EnrollMfa(msgspec.Struct, frozen=True, tag=True):
    user: str


class ConfirmMfa(msgspec.Struct, frozen=True, tag=True):
    user: str
    code: str


class DisableMfa(msgspec.Struct, frozen=True, tag=True):
    user: str


class ThirdPartyCaveat(msgspec.Struct, frozen=True, tag=True):
    """``token`` with a caveat only aria_auth discharges, for ``condition``."""

    token: str
    condition: str


class Discharge(msgspec.Struct, frozen=True, tag=True):
    """A discharge for ``caveat_id``, for the caller holding access token ``token``."""

    caveat_id: bytes
    token: str


class VerifyToken(msgspec.Struct, frozen=True, tag=True):
    """Verify through the actor (remote callers); local ones use the shared verifier."""

    token: str
    service: str = ""
    permissions: list[str] = msgspec.field(default_factory=list)
    resources: dict[str, str] = msgspec.field(default_factory=dict)
    confined: dict[str, str] = msgspec.field(default_factory=dict)
    discharges: list[str] = msgspec.field(default_factory=list)


class GetVerifier(msgspec.Struct, frozen=True, tag=True):
    """The node's shared :class:`.tokens.TokenVerifier` (local callers only)."""


class Purge(msgspec.Struct, frozen=True, tag=True):
    """Delete expired token families (sent to itself on a timer)."""
