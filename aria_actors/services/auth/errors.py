"""The errors of aria_auth.

Every way a token or a login can fail has its own class, so callers (and tests)
can tell a forged token from an expired one::

    AuthError (an AriaError)
    ├── InvalidToken            not a token we can read: garbage, truncated, oversized,
    │   │                       an unknown format or caveat language
    │   ├── InvalidSignature    well formed, but its signature is wrong: tampered with,
    │   │                       a caveat stripped or reordered, or not made with our key
    │   └── UnknownToken        no root key under its identifier (never minted here,
    │                           or its key was deleted)
    ├── CaveatUnmet             a caveat does not hold for this request (``caveat``)
    │   ├── TokenExpired        a ``time-before`` caveat has passed
    │   ├── TokenNotYetValid    a ``time-after`` caveat has not come yet
    │   └── PermissionDenied    the request needs a permission the token lacks
    ├── DischargeError          third-party caveats: a discharge is missing, unused,
    │                           used twice, or the chain is too deep
    ├── TokenRevoked            revoked (by token, user or family), or its family was
    │                           revoked after a refresh token was reused
    ├── RefreshReused           a refresh token presented a second time: the whole
    │                           family is revoked
    ├── LoginFailed             wrong user or password (never says which)
    ├── LoginThrottled          too many failures for this user or source (``retry_after``)
    ├── MfaRequired             the password was right; a TOTP or recovery code is needed
    ├── MfaFailed               the code is wrong, outside the window, or replayed
    └── AuthConflict            a user or role that already exists, an unknown one
"""

from __future__ import annotations

from ..._runtime.errors import AriaError


class AuthError(AriaError):
    """Base of aria_auth's errors."""


class InvalidToken(AuthError):
    """Not a token aria_auth can read; the message says what is wrong with it."""


class InvalidSignature(InvalidToken):
    """The token's signature does not match: forged, tampered with, or another key's."""


class UnknownToken(InvalidToken):
    """No root key is stored under the token's identifier."""


class CaveatUnmet(AuthError):
    """A first-party caveat does not hold for this request.

    ``caveat`` is the caveat's text as it stands in the token (empty for one too
    long to quote, a ``repr`` excerpt for one that is not UTF-8).
    """

    def __init__(self, message: str, caveat: str = "") -> None:
        self.caveat = caveat
        super().__init__(message)


class TokenExpired(CaveatUnmet):
    """A ``time-before`` caveat has passed."""


class TokenNotYetValid(CaveatUnmet):
    """A ``time-after`` caveat lies in the future."""


class PermissionDenied(CaveatUnmet):
    """The request needs a permission (or a resource, a service) the token does not grant."""


class DischargeError(AuthError):
    """Third-party caveats were not discharged properly (missing, unused, reused, too deep)."""


class TokenRevoked(AuthError):
    """The token, its family or its user was revoked."""


class RefreshReused(TokenRevoked):
    """A refresh token was presented a second time; its whole family is now revoked."""


class LoginFailed(AuthError):
    """The user name or the password is wrong (the message never says which)."""


class LoginThrottled(AuthError):
    """Too many failed logins for this user or source; ``retry_after`` is in seconds."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class MfaRequired(AuthError):
    """The password was right, but this user must also give a TOTP or recovery code."""


class MfaFailed(AuthError):
    """The second-factor code is wrong, outside the clock-skew window, or was used before."""


class AuthConflict(AuthError):
    """The user or role already exists, or the one named does not."""
