"""aria_security's settings: ``[services.aria_security]`` in the node configuration.

::

    [services.aria_security]
    backend = "embedded"            # embedded (the default: an encrypted file) | openbao
    max_versions = 10               # versions kept per secret (embedded)
    audit = true                    # the hash-chained audit log in the state directory
    master_key = "file"             # embedded: "file" (master.key, 0600) | "pkcs11"

    [services.aria_security.pkcs11]  # master_key = "pkcs11": the key wrapped by a token
    module = "/usr/lib/softhsm/libsofthsm2.so"
    token = "aria"
    pin_file = "/etc/aria/pkcs11.pin"   # or $ARIA_PKCS11_PIN
    key_label = "aria-master"

    [services.aria_security.openbao]     # backend = "openbao"
    address = "https://bao.internal:8200"
    auth = "approle"
    role_id = "..."
    secret_id_file = "/etc/aria/secret-id"

    [[services.aria_security.rotation]]  # rotated by the rotation actor
    path = "aria_auth/signing"
    field = "key"
    interval = 86400                    # seconds between rotations
    generator = "token"                 # token | hex | password
    length = 32
    grace = 3600                        # the previous version stays readable this long

Secrets never go in this file: tokens and PINs come from files or the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from ..._runtime.errors import ConfigError
from ..._runtime.tomlfile import describe
from .api import check_path
from .openbao import OpenBaoSettings

SERVICE = "aria_security"


class Pkcs11Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the token that wraps the master key is, and how to open it."""

    module: str = "/usr/lib/softhsm/libsofthsm2.so"
    token: str = "aria"
    pin_file: str = ""
    key_label: str = "aria-master"

    def pin(self, environ: Mapping[str, str]) -> str:
        """The user PIN, from ``pin_file`` or ``$ARIA_PKCS11_PIN``.

        Raises:
            ConfigError: neither is set, or the file cannot be read.
        """
        if self.pin_file:
            try:
                return Path(self.pin_file).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"services.aria_security.pkcs11.pin_file {self.pin_file}: {exc.strerror or exc}"
                ) from exc
        pin = environ.get("ARIA_PKCS11_PIN", "")
        if not pin:
            raise ConfigError(
                "services.aria_security.pkcs11: no PIN (set pin_file, or ARIA_PKCS11_PIN)"
            )
        return pin


class RotationPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One secret the rotation actor renews every ``interval`` seconds."""

    path: str
    field: str = "value"
    interval: float
    generator: Literal["token", "hex", "password"] = "token"
    length: int = 32
    grace: float = 0.0

    def __post_init__(self) -> None:
        check_path(self.path)
        if self.interval <= 0:
            raise ValueError(f"rotation {self.path}: interval must be > 0 seconds")
        if not 8 <= self.length <= 4096:
            raise ValueError(f"rotation {self.path}: length must be 8..4096")
        if self.grace < 0:
            raise ValueError(f"rotation {self.path}: grace must be >= 0 seconds")


class SecuritySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All of ``[services.aria_security]``; see the module documentation."""

    backend: Literal["embedded", "openbao"] = "embedded"
    max_versions: int = 10
    audit: bool = True
    master_key: Literal["file", "pkcs11"] = "file"
    pkcs11: Pkcs11Settings = msgspec.field(default_factory=Pkcs11Settings)
    openbao: OpenBaoSettings = msgspec.field(default_factory=OpenBaoSettings)
    rotation: list[RotationPolicy] = msgspec.field(default_factory=list)
    health_interval: float = 10.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.max_versions < 1:
            raise ValueError("max_versions must be >= 1")
        if self.health_interval <= 0 or self.max_backoff <= 0:
            raise ValueError("health_interval and max_backoff must be > 0 seconds")


def load_settings(raw: Mapping[str, Any]) -> SecuritySettings:
    """Decode ``[services.aria_security]``.

    Raises:
        ConfigError: naming the key (``services.aria_security.openbao.timeout: ...``).
    """
    try:
        return msgspec.convert(dict(raw), SecuritySettings)
    except msgspec.ValidationError as exc:
        described = describe(exc).removeprefix("(top level)")
        raise ConfigError(
            f"services.{SERVICE}{'' if described.startswith(':') else '.'}{described}"
        ) from exc


def environ() -> Mapping[str, str]:
    """The process environment (one place, so tests can see what is read)."""
    return os.environ
