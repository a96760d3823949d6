"""The secrets API: the records and errors every secret store speaks.

A secret lives at a *path* (``aria_data/postgres``: letters, digits, ``_ . -``,
segments separated by ``/``) and holds a small mapping of strings (``{"user": ...,
"password": ...}``). Every ``put`` makes a new *version* (1, 2, ...); old versions
are kept up to the store's limit, can be read by number, and can be destroyed.

Errors::

    SecretsError (an AriaError)
    ├── SecretNotFound        no such path (or version)
    ├── SecretsUnavailable    the backend cannot be reached now (nothing stale is served)
    ├── SecretsAccessDenied   the backend refused the credentials (wrong token, policy)
    ├── SecretsSealed         the backend is sealed (OpenBao)
    ├── VersionConflict       a check-and-set put lost the race
    └── StoreCorrupt          the stored data does not decrypt or parse (nothing is overwritten)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Protocol, runtime_checkable

import msgspec

from ..._runtime.errors import AriaError

PATH: Final = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")
MAX_PATH: Final = 512


class SecretsError(AriaError):
    """Base of the secrets errors; ``path`` is the secret concerned, if any."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


class SecretNotFound(SecretsError):
    """No secret at this path (or not this version)."""


class SecretsUnavailable(SecretsError):
    """The backend cannot be reached now; retry later. Nothing stale is served."""


class SecretsAccessDenied(SecretsError):
    """The backend refused the credentials (a wrong or expired token, a policy)."""


class SecretsSealed(SecretsError):
    """The backend is sealed and must be unsealed by an operator."""


class VersionConflict(SecretsError):
    """A check-and-set ``put`` expected another current version."""


class StoreCorrupt(SecretsError):
    """Stored data does not decrypt or does not parse; the file is left untouched."""


def check_path(path: str) -> str:
    """``path`` if it is a valid secret path.

    Raises:
        ValueError: empty, too long, a leading or trailing ``/``, ``..``, or a
            character outside letters, digits, ``_ . - /``.
    """
    if not isinstance(path, str) or not path or len(path) > MAX_PATH or not PATH.match(path):
        raise ValueError(
            f"invalid secret path {path!r}: use letters, digits, '_', '.', '-' in "
            "segments separated by '/' (at most 512 characters)"
        )
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError(f"invalid secret path {path!r}: '.' and '..' are not segments")
    return path


class SecretVersion(msgspec.Struct, frozen=True):
    """One version of a secret: when it was made, and whether it was deleted/destroyed."""

    version: int
    created: float
    deleted: bool = False
    destroyed: bool = False


class Secret(msgspec.Struct, frozen=True):
    """The value of one version of a secret (``data`` is never logged)."""

    path: str
    version: int
    data: dict[str, str]
    created: float

    def __repr__(self) -> str:
        return f"Secret(path={self.path!r}, version={self.version}, data=<{len(self.data)} keys>)"


class SecretMetadata(msgspec.Struct, frozen=True):
    """What is known about a secret without reading its value."""

    path: str
    current_version: int
    versions: list[SecretVersion]
    created: float
    updated: float


class StoreHealth(msgspec.Struct, frozen=True):
    """``ok`` or not, with a sentence for operators (``degraded: ...``)."""

    backend: str
    ok: bool
    detail: str = ""


@runtime_checkable
class SecretStore(Protocol):
    """What every backend implements. All methods may raise :class:`SecretsError`."""

    backend: str

    async def get(self, path: str, version: int | None = None) -> Secret:
        """The current (or the given) version. Raises ``SecretNotFound`` if there is none,
        or if that version was deleted or destroyed."""
        ...

    async def put(self, path: str, data: Mapping[str, str], cas: int | None = None) -> int:
        """Store a new version; its number. With ``cas``, only if the current version is
        ``cas`` (0: the secret must not exist), else ``VersionConflict``."""
        ...

    async def delete(self, path: str) -> None:
        """Remove the secret, every version and its metadata. ``SecretNotFound`` if absent."""
        ...

    async def destroy_versions(self, path: str, versions: list[int]) -> None:
        """Destroy these versions' values for good (their metadata stays)."""
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """Every secret path under ``prefix`` (``""``: all), sorted."""
        ...

    async def metadata(self, path: str) -> SecretMetadata:
        """The versions and times of a secret. ``SecretNotFound`` if absent."""
        ...

    async def health(self) -> StoreHealth:
        """Whether the backend is usable now (never raises)."""
        ...

    async def close(self) -> None:
        """Release files, connections and threads."""
        ...


@runtime_checkable
class DataKeys(Protocol):
    """Envelope encryption: data keys generated and wrapped by a key the backend keeps."""

    async def generate_data_key(self) -> tuple[bytes, bytes]:
        """A fresh 32-byte data key and its wrapped form (store only the wrapped one)."""
        ...

    async def unwrap_data_key(self, wrapped: bytes) -> bytes:
        """The data key inside ``wrapped``. ``StoreCorrupt`` if it is not one of ours."""
        ...
