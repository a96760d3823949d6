"""How other services use aria_security: ``Secrets(node, caller="aria_data")``.

::

    secrets = Secrets(self.node, caller="aria_data")
    credentials = await secrets.get("aria_data/postgres")     # a Secret
    await secrets.watch(self.ref, "aria_data/")              # SecretChanged messages

Every method is a call to the ``aria_security.secrets`` actor with a deadline and
raises the errors of :mod:`~aria_actors.services.security.api` (plus
``NoProcess`` when aria_security is not running, ``CallTimeout``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

from ..._runtime.errors import NoProcess
from ..._runtime.node import Node
from ..._runtime.ref import ActorRef
from .api import Secret, SecretMetadata, StoreHealth
from .messages import (
    DeleteSecret,
    DestroyVersions,
    GetSecret,
    ListSecrets,
    NewDataKey,
    PutSecret,
    SecretInfo,
    SecurityHealth,
    UnwatchSecrets,
    UnwrapDataKey,
    WatchSecrets,
)

SECRETS_ACTOR: Final = "aria_security.secrets"
DEFAULT_TIMEOUT: Final = 10.0


class Secrets:
    """A handle on aria_security for one caller (named in the audit log)."""

    def __init__(self, node: Node, caller: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.node = node
        self.caller = caller
        self.timeout = timeout

    def ref(self) -> ActorRef:
        """The secrets actor.

        Raises:
            NoProcess: aria_security is not running on this node.
        """
        ref = self.node.whereis(SECRETS_ACTOR)
        if ref is None:
            raise NoProcess(SECRETS_ACTOR, "is the aria_security service running?")
        return ref

    async def _call(self, message: object) -> Any:
        return await self.ref().call(message, timeout=self.timeout)

    async def get(self, path: str, version: int | None = None) -> Secret:
        """The current (or given) version of the secret at ``path``."""
        return cast(Secret, await self._call(GetSecret(path, version, self.caller)))

    async def put(
        self,
        path: str,
        data: Mapping[str, str],
        cas: int | None = None,
        rotation_grace: float | None = None,
    ) -> int:
        """Store a new version; its number. ``rotation_grace`` marks it a rotation
        (watchers hear the previous version stays readable that long)."""
        message = PutSecret(path, dict(data), cas, self.caller, rotation_grace)
        return cast(int, await self._call(message))

    async def delete(self, path: str) -> None:
        """Remove the secret and all its versions."""
        await self._call(DeleteSecret(path, self.caller))

    async def destroy(self, path: str, versions: list[int]) -> None:
        """Destroy these versions' values for good."""
        await self._call(DestroyVersions(path, list(versions), self.caller))

    async def list(self, prefix: str = "") -> list[str]:
        """The secret paths under ``prefix``."""
        return cast(list[str], await self._call(ListSecrets(prefix, self.caller)))

    async def info(self, path: str) -> SecretMetadata:
        """A secret's versions and times (not its value)."""
        return cast(SecretMetadata, await self._call(SecretInfo(path, self.caller)))

    async def watch(self, watcher: ActorRef, prefix: str = "") -> None:
        """``watcher`` receives ``SecretChanged`` for every change under ``prefix``."""
        await self._call(WatchSecrets(watcher, prefix))

    async def unwatch(self, watcher: ActorRef) -> None:
        await self._call(UnwatchSecrets(watcher))

    async def health(self) -> StoreHealth:
        """The backend's health, probed now."""
        return cast(StoreHealth, await self._call(SecurityHealth()))

    async def new_data_key(self) -> tuple[bytes, bytes]:
        """A fresh data key and its wrapped form (keep only the wrapped one)."""
        return cast(tuple[bytes, bytes], await self._call(NewDataKey(self.caller)))

    async def unwrap_data_key(self, wrapped: bytes) -> bytes:
        """The data key inside ``wrapped``."""
        return cast(bytes, await self._call(UnwrapDataKey(wrapped, self.caller)))
