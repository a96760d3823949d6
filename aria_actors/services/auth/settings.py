"""aria_auth's settings: ``[services.aria_auth]`` in the node configuration.

::

    [services.aria_auth]
    location = "aria"                  # the location written into tokens
    access_lifetime = 900              # seconds an access token lives
    refresh_lifetime = 2592000         # seconds a refresh token lives (30 days)
    root_key_max_age = 86400           # a refresh after this makes a new root key
    revocation_cache = 1.0             # seconds a token's state is cached per node
    discharge_lifetime = 300           # seconds a discharge from aria_auth lives
    max_failures = 5                   # failed logins (per user, per source) within
    failure_window = 900               #   this many seconds lock the login out for
    lockout = 60                       #   this long, doubling up to
    max_lockout = 3600                 #   this
    mfa_window = 1                     # TOTP steps of clock skew accepted either way

    [services.aria_auth.services.aria_storage]     # a service's own token
    permissions = ["aria_data:read", "aria_queue:submit"]
    lifetime = 3600

    [services.aria_auth.roles.admin]               # roles created at start if missing
    permissions = ["auth:admin"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from ..._runtime.errors import ConfigError
from ..._runtime.tomlfile import describe
from . import caveats

SERVICE: Final = "aria_auth"


class ServiceGrant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one service's own token grants."""

    permissions: list[str] = msgspec.field(default_factory=list)
    lifetime: float = 3600.0

    def __post_init__(self) -> None:
        for name in self.permissions:
            if not caveats.PERMISSION.fullmatch(name):
                raise ValueError(f"a permission must match {caveats.PERMISSION.pattern}: {name!r}")
        if self.lifetime <= 0:
            raise ValueError("lifetime must be positive")


class RoleSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A role created at start when missing (an operator may change it afterwards)."""

    permissions: list[str] = msgspec.field(default_factory=list)
    description: str = ""


class AuthSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All of ``[services.aria_auth]``; see the module documentation."""

    location: str = "aria"
    access_lifetime: float = 900.0
    refresh_lifetime: float = 30 * 86400.0
    root_key_max_age: float = 86400.0
    revocation_cache: float = 1.0
    key_cache: float = 300.0
    discharge_lifetime: float = 300.0
    max_failures: int = 5
    failure_window: float = 900.0
    lockout: float = 60.0
    max_lockout: float = 3600.0
    mfa_window: int = 1
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    argon2_parallelism: int = 4
    services: dict[str, ServiceGrant] = msgspec.field(default_factory=dict)
    roles: dict[str, RoleSettings] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("access_lifetime", "refresh_lifetime", "root_key_max_age", "lockout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.revocation_cache < 0 or self.key_cache < 0:
            raise ValueError("cache times are 0 (no cache) or more")
        if self.refresh_lifetime < self.access_lifetime:
            raise ValueError("refresh_lifetime must be at least access_lifetime")
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if not 0 <= self.mfa_window <= 3:
            raise ValueError("mfa_window must be 0..3 steps")
        for name in self.services:
            if not caveats.NAME.fullmatch(name):
                raise ValueError(f"a service name must match {caveats.NAME.pattern}: {name!r}")
        for name, role in self.roles.items():
            if not caveats.NAME.fullmatch(name):
                raise ValueError(f"a role name must match {caveats.NAME.pattern}: {name!r}")
            for permission in role.permissions:
                if not caveats.PERMISSION.fullmatch(permission):
                    raise ValueError(f"role {name}: not a permission: {permission!r}")


def load_settings(raw: Mapping[str, Any]) -> AuthSettings:
    """Decode ``[services.aria_auth]``.

    Raises:
        ConfigError: naming the key (``services.aria_auth.access_lifetime: ...``).
    """
    try:
        return msgspec.convert(dict(raw), AuthSettings)
    except msgspec.ValidationError as exc:
        described = describe(exc).removeprefix("(top level)")
        raise ConfigError(
            f"services.{SERVICE}{'' if described.startswith(':') else '.'}{described}"
        ) from exc
