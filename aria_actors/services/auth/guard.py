"""Checking a token before a handler runs: ``@authorized``.

::

    class Chunks(Actor):
        @handles(PutChunk)
        @authorized("aria_storage:write", resources=lambda m: {"storage": m.path})
        async def put(self, message: PutChunk) -> None:
            who = verified()            # the token's principal, permissions...
            ...

The message carries the token in a field ``token`` (and optionally the bound
discharges in ``discharges``). The token is verified for this actor's service
(its ``service`` caveats must name it), the permission, and the resources the
message touches; if anything fails the caller gets the error
(:class:`PermissionDenied`, :class:`TokenExpired`, :class:`InvalidToken`...) and
the handler does not run, and this actor keeps running (a refused request is
the caller's problem, not a crash; a cast is dropped and logged). When the token's
state cannot be read (aria_data or aria_security down, aria_auth not running) the
caller gets that error too. Inside the handler, :func:`verified` is the result.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..._runtime.errors import NoProcess
from ..data.api import DatabaseError
from ..security.api import SecretsError
from .client import Auth
from .errors import AuthError, PermissionDenied
from .tokens import Verified

REFUSALS = (AuthError, DatabaseError, SecretsError, NoProcess)
"""What a refused request answers with (the handler's actor keeps running)."""

F = TypeVar("F", bound=Callable[..., Any])

_current: contextvars.ContextVar[Verified] = contextvars.ContextVar("aria_auth_verified")


def verified() -> Verified:
    """The token verified for the handler running now.

    Raises:
        LookupError: outside a handler decorated with :func:`authorized`.
    """
    return _current.get()


def authorized(
    *permissions: str,
    resources: Callable[[Any], Mapping[str, str]] | None = None,
    confined: Callable[[Any], Mapping[str, str]] | None = None,
    service: str | None = None,
) -> Callable[[F], F]:
    """Verify the message's token before the decorated handler runs.

    ``permissions`` are all needed; ``resources(message)`` names what the message
    touches (matched by ``scope-K`` caveats); ``confined(message)`` gives facts of
    the request (matched by ``confine-K`` caveats); ``service`` overrides the
    audience (by default the actor's service).
    """
    needed = frozenset(permissions)

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        async def guarded(self: Any, message: Any) -> Any:
            try:
                token = getattr(message, "token", None)
                if not isinstance(token, str) or not token:
                    raise PermissionDenied(f"{type(message).__name__} needs a token")
                discharges = getattr(message, "discharges", ()) or ()
                result = await Auth(self.node).verify(
                    token,
                    service=service if service is not None else self.service,
                    permissions=needed,
                    resources=resources(message) if resources else None,
                    confined=confined(message) if confined else None,
                    discharges=list(discharges),
                )
            except REFUSALS as exc:  # the caller's problem: answer it, do not crash
                self.defer_reply().fail(exc)
                self.log.info("request_refused", request=type(message).__name__, error=str(exc))
                return None
            reset = _current.set(result)
            try:
                outcome = handler(self, message)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
                return outcome
            finally:
                _current.reset(reset)

        return guarded  # type: ignore[return-value]

    return decorate
