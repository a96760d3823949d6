"""Secret rotation: an actor that renews secrets by their policies.

For each ``[[services.aria_security.rotation]]`` policy the actor writes a new
value into the policy's ``field`` (other fields are kept) every ``interval``
seconds, with a check-and-set so it never overwrites a version it did not read.
Watchers hear ``SecretChanged(change="rotate", previous=..., grace_until=...)``:
the previous version stays readable for ``grace`` seconds, then it is destroyed.

The schedule survives restarts: the next rotation is due ``interval`` after the
current version was written, and a previous version whose grace ran out while
the actor was away is destroyed when it starts. There is one timer per secret: a
rotation an operator asks for (``Rotate``) restarts the schedule from then. A
backend that is down, sealed or refusing us delays the work (retried with a
capped backoff, ``rotation_delayed``); it never crashes the service and never
loses a rotation.
"""

from __future__ import annotations

import itertools
import secrets
import string
import time
from typing import Final

import msgspec

from ..._runtime.actor import Actor, TimerRef, handles
from ..._runtime.errors import CallTimeout, NoProcess
from .api import (
    SecretMetadata,
    SecretNotFound,
    SecretsAccessDenied,
    SecretsError,
    SecretsSealed,
    SecretsUnavailable,
    VersionConflict,
)
from .client import Secrets
from .messages import DestroyPrevious, Rotate
from .settings import SERVICE, RotationPolicy, load_settings

CALLER: Final = "aria_security.rotation"
RETRY: Final = 5.0
MAX_RETRY: Final = 300.0
PASSWORD_ALPHABET: Final = string.ascii_letters + string.digits + "-_.~!@#%^*+="
TRANSIENT: Final = (
    SecretsUnavailable,
    SecretsSealed,
    SecretsAccessDenied,
    VersionConflict,
    CallTimeout,
    NoProcess,
)
"""Failures that delay the work: the backend away, sealed or refusing us, a write that
lost a race, aria_security busy or restarting."""


class Plan(msgspec.Struct, frozen=True, tag=True):
    """Internal: read a policy's secret and schedule its rotation and destructions."""

    path: str


def generate(policy: RotationPolicy) -> str:
    """A new secret value by the policy's generator (from ``secrets``: a CSPRNG)."""
    if policy.generator == "hex":
        return secrets.token_hex(policy.length)[: policy.length]
    if policy.generator == "password":
        return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(policy.length))
    return secrets.token_urlsafe(policy.length)[: policy.length]


class RotationActor(Actor):
    """The ``aria_security.rotation`` actor; see the module documentation."""

    async def init(self) -> None:
        settings = load_settings(self.node.service_settings(SERVICE))
        self.policies = {policy.path: policy for policy in settings.rotation}
        self.secrets = Secrets(self.node, caller=CALLER)
        self.retries: dict[str, float] = {}
        self.timers: dict[str, TimerRef] = {}
        for policy in self.policies.values():
            self.send_after(0, Plan(policy.path))

    def schedule(self, path: str, delay: float, message: Rotate | Plan) -> None:
        """The one pending timer of ``path``: the next rotation, or the next plan."""
        previous = self.timers.pop(path, None)
        if previous is not None:
            previous.cancel()
        self.timers[path] = self.send_after(max(0.0, delay), message)

    def delayed(self, path: str, message: Rotate | Plan, error: BaseException) -> None:
        delay = min(self.retries.get(path, RETRY / 2) * 2, MAX_RETRY)
        self.retries[path] = delay
        self.log.warning("rotation_delayed", path=path, retry_in=delay, error=str(error))
        self.schedule(path, delay, message)

    def policy(self, path: str) -> RotationPolicy:
        policy = self.policies.get(path)
        if policy is None:
            raise SecretsError(f"no rotation policy for {path}", path)
        return policy

    @handles(Plan)
    async def plan(self, message: Plan) -> None:
        """Schedule the next rotation, and the destruction of versions past their grace."""
        policy = self.policy(message.path)
        try:
            info: SecretMetadata | None = await self.secrets.info(policy.path)
        except SecretNotFound:
            info = None
        except TRANSIENT as exc:
            self.delayed(policy.path, message, exc)
            return
        self.retries.pop(policy.path, None)
        now = time.time()
        if info is None:
            self.schedule(policy.path, 0, Rotate(policy.path))
            return
        self.schedule(policy.path, info.updated + policy.interval - now, Rotate(policy.path))
        versions = sorted(info.versions, key=lambda v: v.version)
        for older, newer in itertools.pairwise(versions):
            if older.destroyed or older.deleted:
                continue
            due = newer.created + policy.grace
            self.send_after(max(0.0, due - now), DestroyPrevious(policy.path, older.version))

    @handles(Rotate)
    async def rotate(self, message: Rotate) -> int | None:
        """Rotate now; the new version (``None`` when delayed). An unknown path is
        refused to the caller (an operator's typo must not crash the service)."""
        if message.path not in self.policies:
            self.defer_reply().fail(SecretsError(f"no rotation policy for {message.path}"))
            return None
        policy = self.policy(message.path)
        try:
            try:
                current = await self.secrets.get(policy.path)
                data, expected = dict(current.data), current.version
            except SecretNotFound:
                data, expected = {}, 0
            data[policy.field] = generate(policy)
            version = await self.secrets.put(
                policy.path, data, cas=expected, rotation_grace=policy.grace
            )
        except TRANSIENT as exc:
            self.delayed(policy.path, Plan(policy.path), exc)  # re-read: it may have moved
            return None
        self.retries.pop(policy.path, None)
        self.log.info("secret_rotated", path=policy.path, version=version)
        if expected:
            self.send_after(policy.grace, DestroyPrevious(policy.path, expected))
        self.schedule(policy.path, policy.interval, Rotate(policy.path))
        return int(version)

    @handles(DestroyPrevious)
    async def destroy_previous(self, message: DestroyPrevious) -> None:
        try:
            await self.secrets.destroy(message.path, [message.version])
        except SecretNotFound:
            return
        except TRANSIENT as exc:
            self.log.warning("rotation_delayed", path=message.path, error=str(exc))
            self.send_after(RETRY, message)
            return
        self.log.info("rotation_grace_over", path=message.path, destroyed=message.version)
