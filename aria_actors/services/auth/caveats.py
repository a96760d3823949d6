"""The caveat language of aria_auth tokens (version 1).

A first-party caveat is one line of UTF-8, ``<name> = <value>``, that restricts
where the token holds. Every caveat must hold for a request; a caveat aria_auth
does not know is **denied**. The language is versioned: tokens minted here start
with ``aria-caveats = 1``; a token that names another version is refused as
unreadable (a token without the line, made by another macaroon library, is read
as version 1).

======================  =================================================================
caveat                  holds when
======================  =================================================================
``user = U``            the token belongs to user ``U`` (the principal stored with the
                        token's family, never read from the caveats)
``permissions = A B``   the request needs only permissions among ``A B`` (several such
                        caveats: their intersection; none at all: no restriction;
                        ``permissions = `` with nothing after it: no permission)
``service = S``         the request is made to service ``S`` (the audience)
``time-before = T``     now is before ``T`` (RFC 3339, UTC: ``2026-11-22T10:00:00Z``)
``time-after = T``      now is ``T`` or later
``confine-K = V``       the request was made with ``K`` equal to ``V`` (``confine-ip``,
                        ``confine-user-string``: any key the caller supplies)
``scope-K = P``         the request names a resource of kind ``K`` (``scope-storage``)
                        that is ``P`` or lies under it (``P`` is a ``/`` path prefix)
======================  =================================================================

Adding a caveat only ever removes requests a token is good for (every rule above
is a conjunction), which is what makes offline attenuation safe. Limits: a caveat
is at most :data:`MAX_CAVEAT` bytes, a ``permissions`` caveat names at most
:data:`MAX_PERMISSIONS` permissions.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from .errors import CaveatUnmet, InvalidToken, PermissionDenied, TokenExpired, TokenNotYetValid

VERSION: Final = 1
LANGUAGE: Final = f"aria-caveats = {VERSION}"
MAX_CAVEAT: Final = 1024
MAX_PERMISSIONS: Final = 256

PERMISSION: Final = re.compile(r"^[A-Za-z0-9_.:/*-]{1,128}$")
NAME: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
KEY: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PRINTABLE: Final = re.compile(r"^[^\x00-\x1f\x7f]*$")
_TIME: Final = "%Y-%m-%dT%H:%M:%SZ"
_YEAR_10000: Final = 253402300800
_TIME_VALUE: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass(frozen=True, slots=True)
class Request:
    """What a request asks of a token.

    ``service`` is the service verifying (matched by ``service`` caveats);
    ``permissions`` those the request needs; ``resources`` the resource it
    touches, by kind (``{"storage": "/chars/hero/index.caibx"}``, matched by
    ``scope-K``); ``confined`` facts of the request's context (``{"ip":
    "10.0.0.7"}``, matched by ``confine-K``); ``now`` in epoch seconds
    (``None``: the wall clock).
    """

    service: str = ""
    permissions: frozenset[str] = frozenset()
    resources: Mapping[str, str] = field(default_factory=dict)
    confined: Mapping[str, str] = field(default_factory=dict)
    now: float | None = None


@dataclass(slots=True)
class Grant:
    """What a token's caveats add up to, once they all hold."""

    permissions: frozenset[str] | None = None
    """The permissions the token grants (``None``: no ``permissions`` caveat)."""
    expires: float | None = None
    """The earliest ``time-before``, in epoch seconds."""
    services: set[str] = field(default_factory=set)


# -- writing caveats ------------------------------------------------------------------------


def user(name: str) -> str:
    return _caveat("user", _checked(name, NAME, "a user"))


def permissions(names: Iterable[str]) -> str:
    chosen = sorted(set(names))
    if len(chosen) > MAX_PERMISSIONS:
        raise ValueError(f"at most {MAX_PERMISSIONS} permissions in one caveat")
    for name in chosen:
        _checked(name, PERMISSION, "a permission")
    return _caveat("permissions", " ".join(chosen))


def service(name: str) -> str:
    return _caveat("service", _checked(name, NAME, "a service"))


def time_before(when: float) -> str:
    """Valid until ``when`` (cut to the second before: never later than asked)."""
    return _caveat("time-before", format_time(math.floor(_checked_time(when))))


def time_after(when: float) -> str:
    """Valid from ``when`` (rounded up to the second: never earlier than asked)."""
    return _caveat("time-after", format_time(math.ceil(_checked_time(when))))


def _checked_time(when: float) -> float:
    if not (isinstance(when, int | float) and math.isfinite(when) and 0 <= when < _YEAR_10000):
        raise ValueError(f"a caveat time is epoch seconds from 1970 to 9999, not {when!r}")
    return float(when)


def confine(key: str, value: str) -> str:
    return _caveat(f"confine-{_checked(key, KEY, 'a confine key')}", _value(value))


def scope(kind: str, prefix: str) -> str:
    if not prefix.startswith("/"):
        raise ValueError(f"a scope is a path starting with '/', not {prefix!r}")
    return _caveat(f"scope-{_checked(kind, KEY, 'a scope kind')}", _value(prefix))


def format_time(when: float) -> str:
    """``when`` (epoch seconds) as the caveats write it; whole seconds, UTC."""
    return datetime.fromtimestamp(int(when), UTC).strftime(_TIME)


def _caveat(name: str, value: str) -> str:
    text = f"{name} = {value}"
    if len(text.encode()) > MAX_CAVEAT:
        raise ValueError(f"a caveat is at most {MAX_CAVEAT} bytes")
    return text


def _checked(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} must match {pattern.pattern}, not {value!r}")
    return value


def _value(value: str) -> str:
    if not value or value != value.strip() or not _PRINTABLE.fullmatch(value):
        raise ValueError(f"a caveat value is printable text without edge spaces: {value!r}")
    return value


# -- checking caveats -----------------------------------------------------------------------


def check(
    texts: Iterable[bytes],
    request: Request,
    principal: str | None,
) -> Grant:
    """Check every first-party caveat ``texts`` (in token order) against ``request``.

    ``principal`` is the user the token belongs to (from its family), if any.

    Raises:
        InvalidToken: a caveat names a language version other than 1.
        TokenExpired, TokenNotYetValid: a time caveat does not hold.
        PermissionDenied: a ``permissions``, ``service`` or ``scope-K`` caveat
            does not hold.
        CaveatUnmet: any other caveat does not hold, or is unknown.
    """
    grant = Grant()
    now = time.time() if request.now is None else request.now
    for raw in texts:
        if len(raw) > MAX_CAVEAT:
            raise CaveatUnmet(f"a caveat of {len(raw)} bytes; at most {MAX_CAVEAT}", "")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CaveatUnmet("a caveat that is not UTF-8 text", repr(raw[:64])) from None
        name, sep, value = text.partition(" = ")
        if not sep or (not value and name != "permissions"):
            raise CaveatUnmet(f"unknown caveat {text[:80]!r}", text)
        checker = _CHECKS.get(name)
        if checker is None:
            if name.startswith("confine-") and KEY.fullmatch(name[8:]):
                _confine(name[8:], value, request, text)
                continue
            if name.startswith("scope-") and KEY.fullmatch(name[6:]):
                _scope(name[6:], value, request, text)
                continue
            raise CaveatUnmet(f"unknown caveat {text[:80]!r}", text)
        checker(value, request, principal, now, grant, text)
    return grant


def _language(
    value: str, request: Request, principal: str | None, now: float, grant: Grant, text: str
) -> None:
    if value != str(VERSION):
        raise InvalidToken(f"the token uses caveat language {value[:20]!r}; this node reads 1")


def _user(
    value: str, request: Request, principal: str | None, now: float, grant: Grant, text: str
) -> None:
    if principal is None or value != principal:
        raise CaveatUnmet(f"the token is restricted to user {value!r}", text)


def _permissions(
    value: str, request: Request, principal: str | None, now: float, grant: Grant, text: str
) -> None:
    names = frozenset(name for name in value.split(" ") if name)  # "": none at all
    if len(names) > MAX_PERMISSIONS:
        raise CaveatUnmet(f"more than {MAX_PERMISSIONS} permissions in one caveat", text)
    grant.permissions = names if grant.permissions is None else grant.permissions & names
    missing = request.permissions - names
    if missing:
        raise PermissionDenied(f"the token does not grant {', '.join(sorted(missing))}", text)


def _service(
    value: str, request: Request, principal: str | None, now: float, grant: Grant, text: str
) -> None:
    grant.services.add(value)
    if request.service != value:
        raise PermissionDenied(
            f"the token is for service {value!r}, not {request.service or 'none'!r}", text
        )


def _time_before(
    value: str, request: Request, principal: str | None, now: float, grant: Grant, text: str
) -> None:
    when = _parse_time(value, text)
    grant.expires = when if grant.expires is None else min(grant.expires, when)
    if not now < when:
        raise TokenExpired(f"the token expired at {value}", text)


def _time_after(
    value: str, request: Request, principal: str | None, now: float, grant: Grant, text: str
) -> None:
    when = _parse_time(value, text)
    if now < when:
        raise TokenNotYetValid(f"the token is not valid before {value}", text)


def _confine(key: str, value: str, request: Request, text: str) -> None:
    actual = request.confined.get(key)
    if actual is None or actual != value:
        raise CaveatUnmet(f"the token is confined to {key} {value!r}", text)


def _scope(kind: str, prefix: str, request: Request, text: str) -> None:
    resource = request.resources.get(kind)
    if resource is None:
        raise PermissionDenied(f"the token is scoped to {kind} {prefix!r}", text)
    if not within(resource, prefix):
        raise PermissionDenied(
            f"{kind} {resource!r} lies outside the token's scope {prefix!r}", text
        )


def within(resource: str, prefix: str) -> bool:
    """Whether path ``resource`` is ``prefix`` or lies under it (by whole segments;
    ``..`` segments never match)."""
    if not prefix.startswith("/") or not resource.startswith("/"):
        return False
    if "/../" in f"{resource}/" or "/./" in f"{resource}/":
        return False
    if resource == prefix.rstrip("/") or resource == prefix:
        return True
    return resource.startswith(prefix if prefix.endswith("/") else prefix + "/")


def _parse_time(value: str, text: str) -> float:
    when = parse_time(value)
    if when is None:
        raise CaveatUnmet(f"a time caveat that is not YYYY-MM-DDTHH:MM:SSZ: {value[:40]!r}", text)
    return when


@functools.lru_cache(maxsize=4096)
def parse_time(value: str) -> float | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), or None if it is not one."""
    if not _TIME_VALUE.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:  # 2026-02-30 and the like
        return None


_CHECKS: Final = {
    "aria-caveats": _language,
    "user": _user,
    "permissions": _permissions,
    "service": _service,
    "time-before": _time_before,
    "time-after": _time_after,
}
