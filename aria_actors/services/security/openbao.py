"""The OpenBao backend: KV v2 for secrets, transit for data keys, through hvac.

hvac is synchronous (``requests``), so every call runs in a worker thread with
:func:`aria_actors.run_blocking`, at most ``max_concurrency`` at once; the event
loop never waits on the network.

Authentication is a token (``token`` or ``token_file``, or ``$BAO_TOKEN``) or an
AppRole (``role_id`` and ``secret_id_file``). Before each call the token is
renewed once less than a third of its lease is left, and the AppRole logs in
again when renewal is refused or the token expired; a root token (no lease) is
used as it is.

Failures are translated at this boundary: the server unreachable or timing out
→ :class:`SecretsUnavailable`; a token it refuses → :class:`SecretsAccessDenied`;
a sealed server → :class:`SecretsSealed`; a missing path → :class:`SecretNotFound`;
a check-and-set mismatch → :class:`VersionConflict`. Nothing is cached: while the
server is away every read fails, nothing stale is served.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import anyio
import hvac
import hvac.exceptions
import msgspec
import requests
from hvac.api.secrets_engines import Transit

from ..._runtime.blocking import run_blocking
from .api import (
    Secret,
    SecretMetadata,
    SecretNotFound,
    SecretsAccessDenied,
    SecretsError,
    SecretsSealed,
    SecretsUnavailable,
    SecretVersion,
    StoreCorrupt,
    StoreHealth,
    VersionConflict,
    check_path,
)

T = TypeVar("T")
RENEW_FRACTION: Final = 1 / 3


class OpenBaoSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[services.aria_security.openbao]``.

    ``address``: the server's URL. ``mount``: the KV v2 mount. ``auth``: ``token``
    or ``approle``. ``token_file``: a file holding the token (else ``$BAO_TOKEN``).
    ``role_id`` / ``secret_id_file``: the AppRole. ``transit_mount`` /
    ``transit_key``: for data keys. ``timeout``: seconds per HTTP request.
    ``max_concurrency``: hvac calls in flight at once.
    """

    address: str = "http://127.0.0.1:8200"
    mount: str = "secret"
    auth: Literal["token", "approle"] = "token"
    token_file: str = ""
    role_id: str = ""
    secret_id_file: str = ""
    approle_mount: str = "approle"
    transit_mount: str = "transit"
    transit_key: str = "aria"
    timeout: float = 5.0
    max_concurrency: int = 8

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError("openbao.timeout must be > 0 seconds")
        if self.max_concurrency < 1:
            raise ValueError("openbao.max_concurrency must be >= 1")
        if self.auth == "approle" and not (self.role_id and self.secret_id_file):
            raise ValueError("openbao.auth = 'approle' needs role_id and secret_id_file")


def _read_file(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretsAccessDenied(f"openbao {what} file {path}: {exc.strerror or exc}") from exc


FRACTION = re.compile(r"\.(\d+)")


def _time(text: str) -> float:
    """An RFC 3339 time from OpenBao (``...T01:02:03.12345Z``, any precision) as UNIX time.

    Raises:
        SecretsError: it does not parse (a wrong time must not pass for 1970).
    """
    if not text:
        return 0.0
    normal = FRACTION.sub(lambda m: "." + (m[1] + "000000")[:6], text.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(normal).timestamp()
    except ValueError as exc:
        raise SecretsError(f"openbao sent a time that does not parse: {text!r}") from exc


class OpenBaoStore:
    """A :class:`SecretStore` and :class:`DataKeys` on OpenBao (or Vault) KV v2 + transit."""

    backend = "openbao"

    def __init__(self, settings: OpenBaoSettings, environ: Mapping[str, str] | None = None):
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        # requests takes float seconds; the stubs say int
        self.client = hvac.Client(url=settings.address, timeout=settings.timeout)  # type: ignore[arg-type]
        self.limiter = anyio.CapacityLimiter(settings.max_concurrency)
        self.token_expires: float | None = None  # monotonic; None: no lease (root token)
        self.token_renewable = False
        self.logged_in = False
        self.login_lock = asyncio.Lock()

    # -- plumbing -------------------------------------------------------------------------

    async def _call(self, path: str | None, function: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``function(**kwargs)`` in a thread after making sure we are logged in.

        With AppRole, a token the server refuses (revoked, expired early) is replaced
        by a fresh login and the request is made once more.
        """
        for attempt in (1, 2):
            async with self.login_lock:  # one login for a burst of requests, not one each
                await run_blocking(self._ensure_token, limiter=self.limiter)
            try:
                return await run_blocking(
                    self._translate, path, function, kwargs, limiter=self.limiter
                )
            except SecretsAccessDenied:
                if self.settings.auth != "approle" or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _translate(self, path: str | None, function: Callable[..., T], kwargs: dict[str, Any]) -> T:
        where = f" ({path})" if path else ""
        try:
            return function(**kwargs)
        except hvac.exceptions.InvalidPath as exc:
            if isinstance(getattr(function, "__self__", None), Transit):  # mount or key missing
                mount, key = self.settings.transit_mount, self.settings.transit_key
                raise SecretsError(
                    f"openbao has no transit key {key!r} at mount {mount!r} (bao secrets "
                    f"enable -path={mount} transit; bao write -f {mount}/keys/{key})"
                ) from exc
            raise SecretNotFound(f"no secret{where} in openbao", path) from exc
        except hvac.exceptions.VaultDown as exc:
            raise SecretsSealed(
                f"openbao at {self.settings.address} is sealed; unseal it (bao operator unseal)",
                path,
            ) from exc
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized) as exc:
            self.logged_in = False  # log in again next time (AppRole), or report
            raise SecretsAccessDenied(
                f"openbao refused the token{where}: {exc}; check the token or the policy", path
            ) from exc
        except hvac.exceptions.InvalidRequest as exc:
            if "check-and-set" in str(exc):
                raise VersionConflict(f"check-and-set failed{where}: {exc}", path) from exc
            raise SecretsError(f"openbao rejected the request{where}: {exc}", path) from exc
        except hvac.exceptions.VaultError as exc:
            raise SecretsUnavailable(f"openbao failed{where}: {exc}", path) from exc
        except requests.exceptions.RequestException as exc:
            raise SecretsUnavailable(
                f"openbao at {self.settings.address} is unreachable{where}: {type(exc).__name__}",
                path,
            ) from exc

    def _ensure_token(self) -> None:
        """Log in, renew or re-login as the lease requires (runs in a worker thread)."""
        now = time.monotonic()
        if self.logged_in and (self.token_expires is None or now < self.token_expires):
            return
        if self.logged_in and self.token_renewable:
            try:
                self._translate(None, self._renew, {})
                return
            except SecretsUnavailable:
                if self.settings.auth != "approle":
                    raise
                self.logged_in = False  # past its max TTL (or refused): log in afresh
            except SecretsError:
                self.logged_in = False
        settings = self.settings
        if settings.auth == "approle":
            secret_id = _read_file(settings.secret_id_file, "secret_id")
            try:
                response = self._translate(
                    None,
                    self.client.auth.approle.login,
                    {
                        "role_id": settings.role_id,
                        "secret_id": secret_id,
                        "mount_point": settings.approle_mount,
                        "use_token": True,
                    },
                )
            except (SecretsUnavailable, SecretsSealed):
                raise
            except SecretsError as exc:  # a bad role or secret id is a 400, not a 403
                raise SecretsAccessDenied(
                    f"openbao refused the AppRole login: {exc}; check role_id and secret_id"
                ) from exc
            self._lease(response["auth"]["lease_duration"], response["auth"]["renewable"])
        else:
            token = (
                _read_file(settings.token_file, "token")
                if settings.token_file
                else self.environ.get("BAO_TOKEN") or self.environ.get("VAULT_TOKEN", "")
            )
            if not token:
                raise SecretsAccessDenied(
                    "no openbao token: set openbao.token_file, or BAO_TOKEN in the environment"
                )
            self.client.token = token
            info = self._translate(None, self.client.auth.token.lookup_self, {})["data"]
            self._lease(int(info.get("ttl") or 0), bool(info.get("renewable")))
        self.logged_in = True

    def _renew(self) -> None:
        response = self.client.auth.token.renew_self()
        self._lease(response["auth"]["lease_duration"], response["auth"]["renewable"])

    def _lease(self, seconds: int, renewable: bool) -> None:
        self.token_renewable = renewable
        self.token_expires = (
            None if seconds <= 0 else time.monotonic() + seconds * (1 - RENEW_FRACTION)
        )

    # -- SecretStore ----------------------------------------------------------------------

    async def get(self, path: str, version: int | None = None) -> Secret:
        check_path(path)
        if version is not None and (isinstance(version, bool) or version < 1):
            raise ValueError(f"secret versions start at 1, got {version!r}")
        response = await self._call(
            path,
            self.client.secrets.kv.v2.read_secret_version,
            path=path,
            version=version,
            mount_point=self.settings.mount,
            raise_on_deleted_version=True,
        )
        data = response["data"]
        meta = data["metadata"]
        if data.get("data") is None:
            raise SecretNotFound(f"version {meta.get('version')} of {path} was deleted", path)
        return Secret(
            path=path,
            version=int(meta["version"]),
            data={str(k): str(v) for k, v in data["data"].items()},
            created=_time(meta.get("created_time", "")),
        )

    async def put(self, path: str, data: Mapping[str, str], cas: int | None = None) -> int:
        check_path(path)
        values = _check_data(path, data)
        response = await self._call(
            path,
            self.client.secrets.kv.v2.create_or_update_secret,
            path=path,
            secret=values,
            cas=cas,
            mount_point=self.settings.mount,
        )
        return int(response["data"]["version"])

    async def delete(self, path: str) -> None:
        await self.metadata(path)  # SecretNotFound if absent
        await self._call(
            path,
            self.client.secrets.kv.v2.delete_metadata_and_all_versions,
            path=path,
            mount_point=self.settings.mount,
        )

    async def destroy_versions(self, path: str, versions: list[int]) -> None:
        check_path(path)
        await self._call(
            path,
            self.client.secrets.kv.v2.destroy_secret_versions,
            path=path,
            versions=list(versions),
            mount_point=self.settings.mount,
        )

    async def list(self, prefix: str = "") -> list[str]:
        prefix = prefix.rstrip("/")
        if prefix:
            check_path(prefix)
        found: list[str] = []
        folders = [prefix.rstrip("/") + "/" if prefix else ""]
        if prefix:  # the prefix may itself be a secret
            try:
                await self.metadata(prefix)
                found.append(prefix)
            except SecretNotFound:
                pass
        while folders:
            folder = folders.pop()
            try:
                response = await self._call(
                    folder or None,
                    self.client.secrets.kv.v2.list_secrets,
                    path=folder,
                    mount_point=self.settings.mount,
                )
            except SecretNotFound:
                continue
            for key in response["data"]["keys"]:
                full = f"{folder}{key}"
                if key.endswith("/"):
                    folders.append(full)
                else:
                    found.append(full)
        return sorted(set(found))

    async def metadata(self, path: str) -> SecretMetadata:
        check_path(path)
        response = await self._call(
            path,
            self.client.secrets.kv.v2.read_secret_metadata,
            path=path,
            mount_point=self.settings.mount,
        )
        data = response["data"]
        versions = [
            SecretVersion(
                version=int(number),
                created=_time(info.get("created_time", "")),
                deleted=bool(info.get("deletion_time")),
                destroyed=bool(info.get("destroyed")),
            )
            for number, info in sorted(data["versions"].items(), key=lambda kv: int(kv[0]))
        ]
        return SecretMetadata(
            path=path,
            current_version=int(data["current_version"]),
            versions=versions,
            created=_time(data.get("created_time", "")),
            updated=_time(data.get("updated_time", "")),
        )

    async def health(self) -> StoreHealth:
        try:
            status = await run_blocking(
                self.client.sys.read_health_status, method="GET", limiter=self.limiter
            )
        except requests.exceptions.RequestException as exc:
            return StoreHealth(
                backend=self.backend,
                ok=False,
                detail=f"degraded: {self.settings.address} unreachable ({type(exc).__name__})",
            )
        if not isinstance(status, dict):  # hvac returns a Response for unusual codes
            try:
                status = status.json()
            except ValueError:
                return StoreHealth(backend=self.backend, ok=False, detail="degraded: bad health")
        if status.get("sealed"):
            return StoreHealth(backend=self.backend, ok=False, detail="degraded: sealed")
        if not status.get("initialized", True):
            return StoreHealth(backend=self.backend, ok=False, detail="degraded: not initialized")
        return StoreHealth(backend=self.backend, ok=True, detail=f"openbao {status.get('version')}")

    async def close(self) -> None:
        await run_blocking(self.client.adapter.close)

    # -- DataKeys (transit) ---------------------------------------------------------------

    async def generate_data_key(self) -> tuple[bytes, bytes]:
        response = await self._call(
            None,
            self.client.secrets.transit.generate_data_key,
            name=self.settings.transit_key,
            key_type="plaintext",
            mount_point=self.settings.transit_mount,
        )
        data = response["data"]
        return base64.b64decode(data["plaintext"]), data["ciphertext"].encode()

    async def unwrap_data_key(self, wrapped: bytes) -> bytes:
        try:
            response = await self._call(
                None,
                self.client.secrets.transit.decrypt_data,
                name=self.settings.transit_key,
                ciphertext=wrapped.decode(),
                mount_point=self.settings.transit_mount,
            )
        except (SecretsError, UnicodeDecodeError) as exc:
            if isinstance(exc, SecretsUnavailable | SecretsSealed | SecretsAccessDenied):
                raise
            raise StoreCorrupt(f"not a data key wrapped by transit key: {exc}") from exc
        return base64.b64decode(response["data"]["plaintext"])


def _check_data(path: str, data: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(data, Mapping):
        raise TypeError(f"secret {path}: data must be a mapping of strings")
    values: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"secret {path}: keys and values must be strings ({key!r})")
        values[key] = value
    return values
