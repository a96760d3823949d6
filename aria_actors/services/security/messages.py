"""The messages of aria_security's actors (tagged, so the console can send them too).

Requests carry ``caller``: who is asking, for the audit log. A failed request
raises the :mod:`~aria_actors.services.security.api` error at the caller.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class GetSecret(msgspec.Struct, frozen=True, tag=True):
    path: str
    version: int | None = None
    caller: str = ""


class PutSecret(msgspec.Struct, frozen=True, tag=True):
    """A new version. ``rotation_grace``: set by the rotation actor; watchers are told
    the previous version stays readable that many seconds."""

    path: str
    data: dict[str, str]
    cas: int | None = None
    caller: str = ""
    rotation_grace: float | None = None


class DeleteSecret(msgspec.Struct, frozen=True, tag=True):
    path: str
    caller: str = ""


class DestroyVersions(msgspec.Struct, frozen=True, tag=True):
    path: str
    versions: list[int]
    caller: str = ""


class ListSecrets(msgspec.Struct, frozen=True, tag=True):
    prefix: str = ""
    caller: str = ""


class SecretInfo(msgspec.Struct, frozen=True, tag=True):
    """The metadata of a secret (its versions), not its value."""

    path: str
    caller: str = ""


class WatchSecrets(msgspec.Struct, frozen=True, tag=True):
    """Tell ``watcher`` (an ActorRef) of every change under ``prefix`` (``""``: all)."""

    watcher: Any
    prefix: str = ""


class UnwatchSecrets(msgspec.Struct, frozen=True, tag=True):
    watcher: Any


class SecretChanged(msgspec.Struct, frozen=True, tag=True):
    """Sent to watchers after a change. For a rotation, ``previous`` is the version
    that stays readable until ``grace_until`` (a UNIX time), then is destroyed."""

    path: str
    change: Literal["put", "delete", "destroy", "rotate"]
    version: int | None = None
    previous: int | None = None
    grace_until: float | None = None


class SecurityHealth(msgspec.Struct, frozen=True, tag=True):
    """The backend's health (a StoreHealth) as last probed, and probed now."""


class NewDataKey(msgspec.Struct, frozen=True, tag=True):
    """A fresh data key for envelope encryption: (plaintext, wrapped)."""

    caller: str = ""


class UnwrapDataKey(msgspec.Struct, frozen=True, tag=True):
    wrapped: bytes
    caller: str = ""


class VerifyAudit(msgspec.Struct, frozen=True, tag=True):
    """Check the audit log's hash chain; replies an AuditReport."""


class Probe(msgspec.Struct, frozen=True, tag=True):
    """Internal: time to check the backend's health again."""


class Rotate(msgspec.Struct, frozen=True, tag=True):
    """Rotate one policy's secret now (the rotation actor's timer, or an operator)."""

    path: str


class DestroyPrevious(msgspec.Struct, frozen=True, tag=True):
    """Internal: a rotation's grace period is over."""

    path: str
    version: int
