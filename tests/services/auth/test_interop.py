"""aria_auth's tokens against two other macaroon implementations.

- **macaroon-js**: the ``macaroon`` npm package (3.0.4, pinned in
  ``tests/interop/macaroon-js/package.json`` and its lockfile), driven under node by
  ``tests/interop/macaroon-js/interop.js``. One ``node interop.js --serve`` process
  serves the whole session (:func:`macaroon_js`): one JSON request per line in, one JSON
  reply per line out.
- **plain pymacaroons** (0.13): its own ``Macaroon`` and ``Verifier``, not aria_auth's
  wrappers around it.

Every direction is covered, in v2 binary and v2 JSON: tokens minted by
:func:`.macaroons.mint` verify in both; tokens minted by both verify with
:func:`.macaroons.verify` and are refused with the right error for a request they do
not grant; attenuation in one holds in the other; third-party caveats added,
discharged and bound by any mix of the implementations verify everywhere; a token
altered in JavaScript is an :class:`InvalidSignature` here.

Without node, npm or the package (and no way to install it), the tests are skipped,
except in CI (``CI=true``), where that fails them.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Literal, NoReturn

import pymacaroons
import pytest
from pymacaroons.exceptions import MacaroonVerificationFailedException
from pymacaroons.serializers import BinarySerializer, JsonSerializer

from aria_actors.services.auth import caveats, codec, macaroons
from aria_actors.services.auth.client import Auth
from aria_actors.services.auth.errors import (
    CaveatUnmet,
    DischargeError,
    InvalidSignature,
    InvalidToken,
    PermissionDenied,
    TokenExpired,
)

from . import test_vectors as vectors
from .support import PASSWORD, auth_node

JS_DIR = Path(__file__).resolve().parents[2] / "interop" / "macaroon-js"
MACAROON_JS_VERSION = "3.0.4"
NPM_TIMEOUT = 300.0
REPLY_TIMEOUT = 30.0
"""Seconds to wait for one reply of the node process (a reply takes milliseconds)."""

Side = Literal["python", "js"]

# -- the node process ------------------------------------------------------------------------


def unavailable(reason: str) -> NoReturn:
    """Skip for a missing tool; in CI (``CI=true``) fail instead, never skip silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def installed_version() -> str | None:
    """The version of ``node_modules/macaroon``, or None when it is not installed."""
    manifest = JS_DIR / "node_modules" / "macaroon" / "package.json"
    try:
        version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


def install_macaroon_js() -> None:
    """``npm ci`` in JS_DIR unless the pinned package is there already."""
    if installed_version() == MACAROON_JS_VERSION:
        return
    npm = shutil.which("npm")
    if npm is None:
        unavailable(f"npm is not installed (needed to install macaroon {MACAROON_JS_VERSION})")
    command = [npm, "ci", "--no-audit", "--no-fund"]
    try:
        result = subprocess.run(
            command,
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        unavailable(f"'npm ci' in {JS_DIR} did not finish within {NPM_TIMEOUT:.0f}s")
    except OSError as exc:
        unavailable(f"'npm ci' in {JS_DIR} could not run: {exc}")
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()[-2000:]
        unavailable(f"'npm ci' in {JS_DIR} failed (exit {result.returncode}): {output}")
    found = installed_version()
    if found != MACAROON_JS_VERSION:
        unavailable(f"'npm ci' installed macaroon {found}, not {MACAROON_JS_VERSION}")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class MacaroonJS:
    """A ``node interop.js --serve`` child: one request line in, one reply line out.

    Every wait has a deadline (:data:`REPLY_TIMEOUT`); after a missed reply the
    process is out of step and every later call fails at once.
    """

    def __init__(self, node: str, stderr: IO[bytes]) -> None:
        self._stderr = stderr
        self._lock = threading.Lock()
        self._broken: str | None = None
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._process = subprocess.Popen(
            [node, "interop.js", "--serve"],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="macaroon-js", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def _stderr_tail(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace")[-2000:]

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """The reply to ``op`` (``ok`` true, or false with ``error``)."""
        with self._lock:
            if self._broken is not None:
                raise AssertionError(f"macaroon-js is out of service: {self._broken}")
            assert self._process.stdin is not None
            try:
                self._process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
                self._process.stdin.flush()
                line = self._replies.get(timeout=REPLY_TIMEOUT)
            except (OSError, queue.Empty) as exc:
                self._broken = f"no reply to {op!r} ({type(exc).__name__})"
                raise AssertionError(
                    f"macaroon-js: {self._broken}; stderr: {self._stderr_tail()}"
                ) from None
            if line is None:
                self._broken = f"the node process exited ({self._process.wait(5)})"
                raise AssertionError(f"macaroon-js: {self._broken}: {self._stderr_tail()}")
            reply: dict[str, Any] = json.loads(line)
            return reply

    def run(self, op: str, **fields: Any) -> dict[str, Any]:
        """The reply to ``op``, which must succeed."""
        reply = self.call(op, **fields)
        assert reply["ok"], f"macaroon-js {op}: {reply.get('error')}"
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            assert self._process.stdin is not None
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    # -- the operations of interop.js

    def mint(
        self,
        key: bytes,
        identifier: bytes,
        caveat_list: Sequence[str] = (),
        location: str = "",
        fmt: codec.Format = "binary",
        version: int = 2,
    ) -> str:
        reply = self.run(
            "mint",
            rootKey=b64(key),
            identifier64=b64(identifier),
            location=location,
            caveats=list(caveat_list),
            format=fmt,
            version=version,
        )
        return str(reply["token"])

    def verify(
        self,
        token: str,
        key: bytes,
        discharges: Sequence[str] = (),
        satisfied: Sequence[str] = (),
    ) -> str | None:
        """None when the token verifies, else macaroon-js's error message."""
        reply = self.call(
            "verify",
            rootKey=b64(key),
            token=token,
            discharges=list(discharges),
            satisfied=list(satisfied),
        )
        return None if reply["ok"] else str(reply["error"])

    def attenuate(self, token: str, caveat_list: Sequence[str], fmt: codec.Format) -> str:
        reply = self.run("attenuate", token=token, caveats=list(caveat_list), format=fmt)
        return str(reply["token"])

    def add_third_party(
        self, token: str, location: str, key: bytes, caveat_id: bytes, fmt: codec.Format
    ) -> str:
        reply = self.run(
            "addThirdParty",
            token=token,
            caveatKey=b64(key),
            id64=b64(caveat_id),
            location=location,
            format=fmt,
        )
        return str(reply["token"])

    def discharge(
        self,
        key: bytes,
        caveat_id: bytes,
        caveat_list: Sequence[str],
        location: str,
        fmt: codec.Format,
    ) -> str:
        reply = self.run(
            "discharge",
            caveatKey=b64(key),
            id64=b64(caveat_id),
            caveats=list(caveat_list),
            location=location,
            format=fmt,
        )
        return str(reply["token"])

    def bind(self, token: str, discharge: str, fmt: codec.Format) -> str:
        return str(self.run("bind", token=token, discharge=discharge, format=fmt)["token"])

    def inspect(self, token: str) -> dict[str, Any]:
        return self.run("inspect", token=token)

    def tamper(self, token: str, how: str, fmt: codec.Format, **fields: Any) -> str:
        return str(self.run("tamper", token=token, how=how, format=fmt, **fields)["token"])


@pytest.fixture(scope="session")
def macaroon_js(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MacaroonJS]:
    """macaroon-js in one node process for the whole session (installed with
    ``npm ci`` first if ``node_modules`` lacks it)."""
    node = shutil.which("node")
    if node is None:
        unavailable("node is not installed (needed for the macaroon-js interop tests)")
    install_macaroon_js()
    stderr_path = tmp_path_factory.mktemp("macaroon-js") / "stderr.log"
    with stderr_path.open("w+b") as stderr:
        client = MacaroonJS(node, stderr)
        try:
            reply = client.call("inspect", token="")  # a round trip: the process is up
            assert reply == {"ok": False, "error": "token must be a non-empty string"}, reply
            yield client
        finally:
            client.close()


# -- the tokens ------------------------------------------------------------------------------

ROOT_KEY = hashlib.sha256(b"aria interop: root key").digest()
OTHER_KEY = hashlib.sha256(b"aria interop: another root key").digest()
CAVEAT_KEY = hashlib.sha256(b"aria interop: third-party caveat key").digest()
IDENTIFIERS = {
    "text-id": b"aria-interop-token-0001",
    "binary-id": b"\x00\xff\xfe\x80aria\x81" + bytes(range(200, 216)),
}
"""A UTF-8 identifier (JSON ``i``) and one that is not (JSON ``i64``)."""
TEXT_ID = IDENTIFIERS["text-id"]
LOCATION = "https://aria.example/auth"
TP_LOCATION = "https://login.aria.example/"
TP_ID = b"aria interop: third-party caveat 1"
TP_ID_2 = b"aria interop: third-party caveat 2"
PRINCIPAL = "alice"
NOW = 1_900_000_000.0
EXPIRES = NOW + 3600
READ, WRITE = "storage:read", "storage:write"
ARIA_CAVEATS = (
    caveats.LANGUAGE,
    caveats.user(PRINCIPAL),
    caveats.permissions([READ, WRITE]),
    caveats.service("storage"),
    caveats.time_before(EXPIRES),
)
MATCH = caveats.Request(service="storage", permissions=frozenset({READ}), now=NOW)
FORMATS: tuple[codec.Format, ...] = ("binary", "json")
SIDES: tuple[Side, ...] = ("python", "js")

MISMATCHES = {
    "permission": (
        dataclasses.replace(MATCH, permissions=frozenset({READ, "storage:admin"})),
        PRINCIPAL,
        PermissionDenied,
    ),
    "service": (dataclasses.replace(MATCH, service="billing"), PRINCIPAL, PermissionDenied),
    "expired": (dataclasses.replace(MATCH, now=EXPIRES), PRINCIPAL, TokenExpired),
    "other-user": (MATCH, "bob", CaveatUnmet),
    "no-principal": (MATCH, None, CaveatUnmet),
}
"""Requests the tokens of :data:`ARIA_CAVEATS` do not grant, and the error each gets."""


def py_verify(
    token: str,
    key: bytes = ROOT_KEY,
    discharges: Sequence[str] = (),
    request: caveats.Request = MATCH,
    principal: str | None = PRINCIPAL,
) -> caveats.Grant:
    """aria_auth's verification of ``token``: codec.decode, then macaroons.verify."""
    root = codec.decode(token)
    bound = [codec.decode(discharge) for discharge in discharges]
    return macaroons.verify(root, key, bound, request, principal)


def assert_aria_grant(grant: caveats.Grant) -> None:
    assert grant.permissions == frozenset({READ, WRITE})
    assert grant.services == {"storage"}
    assert grant.expires == EXPIRES


def deserialize(token: str) -> pymacaroons.Macaroon:
    """A token in plain pymacaroons."""
    serializer = JsonSerializer() if token.lstrip().startswith("{") else BinarySerializer()
    return pymacaroons.Macaroon.deserialize(token, serializer)


def time_before_holds(now: float) -> Any:
    """A pymacaroons general caveat checker for aria's ``time-before``."""

    def check(predicate: str) -> bool:
        name, _, value = predicate.partition(" = ")
        when = caveats.parse_time(value) if name == "time-before" else None
        return when is not None and now < when

    return check


def pymacaroons_verifier(exact: Sequence[str], now: float = NOW) -> pymacaroons.Verifier:
    """A plain pymacaroons verifier: ``exact`` caveats, and ``time-before`` against ``now``."""
    verifier = pymacaroons.Verifier()
    for predicate in exact:
        if not predicate.startswith("time-before = "):
            verifier.satisfy_exact(predicate)
    verifier.satisfy_general(time_before_holds(now))
    return verifier


def pymacaroons_mint(
    key: bytes, identifier: bytes, caveat_list: Sequence[str], fmt: codec.Format
) -> str:
    macaroon = pymacaroons.Macaroon(
        location=LOCATION, identifier=identifier, key=key, version=pymacaroons.MACAROON_V2
    )
    for caveat in caveat_list:
        macaroon.add_first_party_caveat(caveat)
    return str(macaroon.serialize(JsonSerializer() if fmt == "json" else BinarySerializer()))


def fields(token: str) -> dict[str, Any]:
    """The fields of a token as aria_auth's codec reads them, shaped like interop.js's
    ``inspect`` reply."""
    decoded = codec.decode(token)
    return {
        "ok": True,
        "version": decoded.version,
        "location": decoded.location,
        "identifier64": b64(decoded.identifier),
        "signature": decoded.signature.hex(),
        "caveats": [
            {"id64": b64(c.id)}
            if c.vid is None
            else {"id64": b64(c.id), "vid64": b64(c.vid), "location": c.location}
            for c in decoded.caveats
        ],
    }


# -- aria_auth's tokens in the other implementations ------------------------------------------


@pytest.mark.parametrize("identifier", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_python_token_verifies_in_js(
    macaroon_js: MacaroonJS, fmt: codec.Format, identifier: bytes
) -> None:
    token = macaroons.mint(ROOT_KEY, identifier, ARIA_CAVEATS, LOCATION, fmt)
    assert macaroon_js.verify(token, ROOT_KEY, satisfied=ARIA_CAVEATS) is None
    error = macaroon_js.verify(token, ROOT_KEY, satisfied=ARIA_CAVEATS[:-1])
    assert error is not None
    assert ARIA_CAVEATS[-1] in error
    assert macaroon_js.verify(token, OTHER_KEY, satisfied=ARIA_CAVEATS) is not None


@pytest.mark.parametrize("identifier", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_js_reads_python_token_fields(
    macaroon_js: MacaroonJS, fmt: codec.Format, identifier: bytes
) -> None:
    token = macaroons.mint(ROOT_KEY, identifier, ARIA_CAVEATS, LOCATION, fmt)
    token = macaroons.add_third_party_caveat(token, TP_LOCATION, CAVEAT_KEY, TP_ID, fmt)
    assert macaroon_js.inspect(token) == fields(token)


@pytest.mark.parametrize("identifier", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_python_token_verifies_in_pymacaroons(fmt: codec.Format, identifier: bytes) -> None:
    token = macaroons.mint(ROOT_KEY, identifier, ARIA_CAVEATS, LOCATION, fmt)
    macaroon = deserialize(token)
    assert macaroon.identifier_bytes == identifier
    assert pymacaroons_verifier(ARIA_CAVEATS).verify(macaroon, ROOT_KEY)
    with pytest.raises(MacaroonVerificationFailedException):
        pymacaroons_verifier(ARIA_CAVEATS, now=EXPIRES).verify(macaroon, ROOT_KEY)
    with pytest.raises(MacaroonVerificationFailedException):
        pymacaroons_verifier(ARIA_CAVEATS[1:]).verify(macaroon, ROOT_KEY)
    with pytest.raises(MacaroonVerificationFailedException):
        pymacaroons_verifier(ARIA_CAVEATS).verify(macaroon, OTHER_KEY)


@pytest.mark.parametrize("location", [LOCATION, ""], ids=["location", "no-location"])
@pytest.mark.parametrize("identifier", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_python_and_js_mint_the_same_token(
    macaroon_js: MacaroonJS, fmt: codec.Format, identifier: bytes, location: str
) -> None:
    """The algorithm is deterministic: same key, identifier and caveats, same token."""
    ours = macaroons.mint(ROOT_KEY, identifier, ARIA_CAVEATS, location, fmt)
    theirs = macaroon_js.mint(ROOT_KEY, identifier, ARIA_CAVEATS, location, fmt)
    assert codec.decode(theirs) == codec.decode(ours)
    # aria_auth's own encoder writes what macaroon-js writes, byte for byte
    assert (
        codec.encode(codec.decode(ours), "binary")
        == macaroon_js.run("convert", token=ours, format="binary")["token"]
    )


# -- the other implementations' tokens in aria_auth -------------------------------------------


@pytest.mark.parametrize("identifier", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_js_token_verifies_in_python(
    macaroon_js: MacaroonJS, fmt: codec.Format, identifier: bytes
) -> None:
    token = macaroon_js.mint(ROOT_KEY, identifier, ARIA_CAVEATS, LOCATION, fmt)
    decoded = codec.decode(token)
    assert (decoded.identifier, decoded.location, decoded.version) == (identifier, LOCATION, 2)
    assert_aria_grant(py_verify(token))


@pytest.mark.parametrize("mismatch", MISMATCHES.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_js_token_refused_for_other_requests(
    macaroon_js: MacaroonJS, fmt: codec.Format, mismatch: str
) -> None:
    request, principal, error = MISMATCHES[mismatch]
    token = macaroon_js.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    with pytest.raises(error):
        py_verify(token, request=request, principal=principal)


@pytest.mark.parametrize("fmt", FORMATS)
def test_js_token_with_another_key_is_an_invalid_signature(
    macaroon_js: MacaroonJS, fmt: codec.Format
) -> None:
    token = macaroon_js.mint(OTHER_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    with pytest.raises(InvalidSignature):
        py_verify(token)


@pytest.mark.parametrize("identifier", IDENTIFIERS.values(), ids=IDENTIFIERS.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_pymacaroons_token_verifies_in_python(fmt: codec.Format, identifier: bytes) -> None:
    token = pymacaroons_mint(ROOT_KEY, identifier, ARIA_CAVEATS, fmt)
    assert codec.decode(token).identifier == identifier
    assert_aria_grant(py_verify(token))
    with pytest.raises(InvalidSignature):
        py_verify(token, key=OTHER_KEY)


@pytest.mark.parametrize("mismatch", MISMATCHES.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_pymacaroons_token_refused_for_other_requests(fmt: codec.Format, mismatch: str) -> None:
    request, principal, error = MISMATCHES[mismatch]
    token = pymacaroons_mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, fmt)
    with pytest.raises(error):
        py_verify(token, request=request, principal=principal)


LABEL = "ünïcødé " * 60  # 600 characters, 960 bytes: multi-byte field lengths everywhere


@pytest.mark.parametrize("fmt", FORMATS)
def test_long_fields_and_unicode(macaroon_js: MacaroonJS, fmt: codec.Format) -> None:
    identifier = bytes(range(256)) * 2
    location = "https://ärïa.example/" + "p" * 200
    caveat_list = (*ARIA_CAVEATS, caveats.confine("label", LABEL.strip()))
    request = dataclasses.replace(MATCH, confined={"label": LABEL.strip()})
    ours = macaroons.mint(ROOT_KEY, identifier, caveat_list, location, fmt)
    theirs = macaroon_js.mint(ROOT_KEY, identifier, caveat_list, location, fmt)
    assert codec.decode(theirs) == codec.decode(ours)
    assert codec.decode(theirs).location == location
    assert_aria_grant(py_verify(theirs, request=request))
    with pytest.raises(CaveatUnmet):
        py_verify(theirs, request=dataclasses.replace(request, confined={"label": "other"}))
    assert macaroon_js.verify(ours, ROOT_KEY, satisfied=caveat_list) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_js_token_with_many_caveats(macaroon_js: MacaroonJS, fmt: codec.Format) -> None:
    """Up to codec.MAX_CAVEATS caveats are read; a longer token is refused as unreadable
    (macaroon-js itself has no limit)."""
    extra = [caveats.confine(f"k{index}", "v") for index in range(codec.MAX_CAVEATS)]
    request = dataclasses.replace(MATCH, confined={f"k{index}": "v" for index in range(64)})
    fits = (*ARIA_CAVEATS, *extra[: codec.MAX_CAVEATS - len(ARIA_CAVEATS)])
    token = macaroon_js.mint(ROOT_KEY, TEXT_ID, fits, LOCATION, fmt)
    assert len(codec.decode(token).caveats) == codec.MAX_CAVEATS
    assert_aria_grant(py_verify(token, request=request))
    too_long = macaroon_js.attenuate(token, [extra[-1]], fmt)
    assert macaroon_js.verify(too_long, ROOT_KEY, satisfied=[*fits, extra[-1]]) is None
    with pytest.raises(InvalidToken, match="more than"):
        codec.decode(too_long)


@pytest.mark.parametrize("source", ["js-json", "pymacaroons-binary", "pymacaroons-json"])
def test_v1_tokens_from_other_libraries(macaroon_js: MacaroonJS, source: str) -> None:
    """The older v1 formats are read too (macaroon-js writes v1 as JSON only)."""
    if source == "js-json":
        token = macaroon_js.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, "json", version=1)
        assert '"identifier"' in token
    else:
        macaroon = pymacaroons.Macaroon(location=LOCATION, identifier=TEXT_ID, key=ROOT_KEY)
        for caveat in ARIA_CAVEATS:
            macaroon.add_first_party_caveat(caveat)
        serializer = JsonSerializer() if source.endswith("json") else BinarySerializer()
        token = str(macaroon.serialize(serializer))
    decoded = codec.decode(token)
    assert (decoded.version, decoded.identifier, decoded.location) == (1, TEXT_ID, LOCATION)
    assert (
        decoded.signature == codec.decode(macaroons.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS)).signature
    )
    assert_aria_grant(py_verify(token))
    with pytest.raises(PermissionDenied):
        py_verify(token, request=dataclasses.replace(MATCH, service="billing"))


# -- attenuation --------------------------------------------------------------------------------

BROAD = (caveats.LANGUAGE, caveats.user(PRINCIPAL), caveats.permissions([READ, WRITE]))
NARROWING = (
    caveats.permissions([READ]),
    caveats.service("storage"),
    caveats.time_before(NOW + 60),
)


@pytest.mark.parametrize("minter", SIDES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_js_attenuation_holds_in_python(
    macaroon_js: MacaroonJS, fmt: codec.Format, minter: Side
) -> None:
    if minter == "python":
        broad = macaroons.mint(ROOT_KEY, TEXT_ID, BROAD, LOCATION, fmt)
    else:
        broad = macaroon_js.mint(ROOT_KEY, TEXT_ID, BROAD, LOCATION, fmt)
    narrow = macaroon_js.attenuate(broad, NARROWING, fmt)
    write = dataclasses.replace(MATCH, permissions=frozenset({WRITE}))

    assert py_verify(broad, request=write).permissions == frozenset({READ, WRITE})
    grant = py_verify(narrow)
    assert grant.permissions == frozenset({READ})
    assert grant.services == {"storage"}
    assert grant.expires == NOW + 60
    with pytest.raises(PermissionDenied):
        py_verify(narrow, request=write)
    with pytest.raises(PermissionDenied):
        py_verify(narrow, request=dataclasses.replace(MATCH, service="billing"))
    with pytest.raises(TokenExpired):
        py_verify(narrow, request=dataclasses.replace(MATCH, now=NOW + 60))
    assert macaroon_js.verify(narrow, ROOT_KEY, satisfied=BROAD + NARROWING) is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_python_attenuation_holds_in_js(macaroon_js: MacaroonJS, fmt: codec.Format) -> None:
    broad = macaroon_js.mint(ROOT_KEY, TEXT_ID, BROAD, LOCATION, fmt)
    narrow = macaroons.attenuate(broad, NARROWING, fmt)
    assert macaroon_js.verify(narrow, ROOT_KEY, satisfied=BROAD + NARROWING) is None
    error = macaroon_js.verify(narrow, ROOT_KEY, satisfied=BROAD)
    assert error is not None
    assert NARROWING[0] in error
    assert py_verify(narrow).permissions == frozenset({READ})


# -- third-party caveats ------------------------------------------------------------------------

DISCHARGE_CAVEATS = (caveats.time_before(NOW + 60),)


def add_third_party(
    side: Side, js: MacaroonJS, token: str, key: bytes, caveat_id: bytes, fmt: codec.Format
) -> str:
    if side == "python":
        return macaroons.add_third_party_caveat(token, TP_LOCATION, key, caveat_id, fmt)
    return js.add_third_party(token, TP_LOCATION, key, caveat_id, fmt)


def discharge(
    side: Side,
    js: MacaroonJS,
    key: bytes,
    caveat_id: bytes,
    fmt: codec.Format,
    caveat_list: Sequence[str] = DISCHARGE_CAVEATS,
) -> str:
    if side == "python":
        return macaroons.discharge(key, caveat_id, caveat_list, TP_LOCATION, fmt)
    return js.discharge(key, caveat_id, caveat_list, TP_LOCATION, fmt)


def bind(side: Side, js: MacaroonJS, token: str, discharge_token: str, fmt: codec.Format) -> str:
    if side == "python":
        return macaroons.prepare_for_request(token, discharge_token, fmt)
    return js.bind(token, discharge_token, fmt)


@pytest.mark.parametrize("binder", SIDES)
@pytest.mark.parametrize("discharger", SIDES)
@pytest.mark.parametrize("adder", SIDES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_third_party_caveat(
    macaroon_js: MacaroonJS, fmt: codec.Format, adder: Side, discharger: Side, binder: Side
) -> None:
    """A third-party caveat added, discharged and bound by any mix of the two
    implementations verifies in aria_auth, macaroon-js and plain pymacaroons."""
    if adder == "python":
        token = macaroons.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    else:
        token = macaroon_js.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    token = add_third_party(adder, macaroon_js, token, CAVEAT_KEY, TP_ID, fmt)
    unbound = discharge(discharger, macaroon_js, CAVEAT_KEY, TP_ID, fmt)
    bound = bind(binder, macaroon_js, token, unbound, fmt)
    satisfied = ARIA_CAVEATS + DISCHARGE_CAVEATS

    grant = py_verify(token, discharges=[bound])
    assert grant.expires == NOW + 60  # the discharge's caveat is checked too
    assert grant.permissions == frozenset({READ, WRITE})
    assert macaroon_js.verify(token, ROOT_KEY, [bound], satisfied) is None
    assert pymacaroons_verifier(satisfied).verify(
        deserialize(token), ROOT_KEY, [deserialize(bound)]
    )

    with pytest.raises(DischargeError):
        py_verify(token, discharges=[unbound])
    assert macaroon_js.verify(token, ROOT_KEY, [unbound], satisfied) is not None
    with pytest.raises(DischargeError):
        py_verify(token)
    with pytest.raises(TokenExpired):
        py_verify(token, discharges=[bound], request=dataclasses.replace(MATCH, now=NOW + 60))


@pytest.mark.parametrize("fmt", FORMATS)
def test_third_party_caveat_with_a_wrong_caveat_key(
    macaroon_js: MacaroonJS, fmt: codec.Format
) -> None:
    token = macaroons.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    token = macaroons.add_third_party_caveat(token, TP_LOCATION, CAVEAT_KEY, TP_ID, fmt)
    forged = macaroon_js.bind(token, macaroon_js.discharge(OTHER_KEY, TP_ID, (), "", fmt), fmt)
    with pytest.raises(DischargeError):
        py_verify(token, discharges=[forged])
    assert macaroon_js.verify(token, ROOT_KEY, [forged], ARIA_CAVEATS) is not None


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_discharges_from_js(macaroon_js: MacaroonJS, fmt: codec.Format) -> None:
    """A discharge (made in JS) that has a third-party caveat of its own: both discharges
    are bound to the token, as macaroon-js's bindToRoot does."""
    token = macaroons.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    token = macaroons.add_third_party_caveat(token, TP_LOCATION, CAVEAT_KEY, TP_ID, fmt)
    second_key = hashlib.sha256(b"aria interop: second caveat key").digest()
    first = macaroon_js.discharge(CAVEAT_KEY, TP_ID, DISCHARGE_CAVEATS, TP_LOCATION, fmt)
    first = macaroon_js.add_third_party(first, TP_LOCATION, second_key, TP_ID_2, fmt)
    second = macaroon_js.discharge(second_key, TP_ID_2, (), TP_LOCATION, fmt)
    bound = [macaroon_js.bind(token, first, fmt), macaroon_js.bind(token, second, fmt)]

    assert py_verify(token, discharges=bound).expires == NOW + 60
    assert py_verify(token, discharges=bound[::-1]).expires == NOW + 60
    satisfied = ARIA_CAVEATS + DISCHARGE_CAVEATS
    assert macaroon_js.verify(token, ROOT_KEY, bound, satisfied) is None
    with pytest.raises(DischargeError):
        py_verify(token, discharges=bound[:1])
    with pytest.raises(DischargeError):
        py_verify(token, discharges=[bound[0], second])  # the inner one is not bound
    with pytest.raises(DischargeError):
        py_verify(token, discharges=[*bound, bound[1]])  # one discharge too many


@pytest.mark.parametrize("fmt", FORMATS)
def test_attenuating_after_binding_detaches_the_discharge(
    macaroon_js: MacaroonJS, fmt: codec.Format
) -> None:
    """A discharge is bound to the token's signature at binding time."""
    token = macaroon_js.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    token = macaroon_js.add_third_party(token, TP_LOCATION, CAVEAT_KEY, TP_ID, fmt)
    bound = macaroon_js.bind(
        token, macaroon_js.discharge(CAVEAT_KEY, TP_ID, (), TP_LOCATION, fmt), fmt
    )
    later = macaroons.attenuate(token, [caveats.permissions([READ])], fmt)
    assert py_verify(token, discharges=[bound]).permissions == frozenset({READ, WRITE})
    with pytest.raises(DischargeError):
        py_verify(later, discharges=[bound])
    rebound = macaroon_js.bind(
        later, macaroon_js.discharge(CAVEAT_KEY, TP_ID, (), TP_LOCATION, fmt), fmt
    )
    assert py_verify(later, discharges=[rebound]).permissions == frozenset({READ})


# -- tampering ------------------------------------------------------------------------------------

TAMPERINGS = {
    # a caveat rewritten to grant more (the permissions caveat is index 2)
    "widen-permissions": {
        "how": "replaceCaveat",
        "index": 2,
        "caveat": caveats.permissions([READ, WRITE, "storage:admin"]),
    },
    "drop-service": {"how": "dropCaveat", "index": 3},
    "drop-expiry": {"how": "dropCaveat", "index": 4},
    "append-caveat": {"how": "appendCaveat", "caveat": caveats.permissions([READ])},
    "flip-signature": {"how": "flipSignature", "index": 7},
    "other-identifier": {"how": "identifier", "identifier": "aria-interop-token-0002"},
}


@pytest.mark.parametrize("tampering", TAMPERINGS.keys())
@pytest.mark.parametrize("fmt", FORMATS)
def test_tampered_js_token_is_an_invalid_signature(
    macaroon_js: MacaroonJS, fmt: codec.Format, tampering: str
) -> None:
    token = macaroon_js.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    forged = macaroon_js.tamper(token, fmt=fmt, **TAMPERINGS[tampering])
    assert codec.decode(forged) != codec.decode(token)
    request = dataclasses.replace(MATCH, permissions=frozenset({"storage:admin"}))
    with pytest.raises(InvalidSignature):
        py_verify(forged, request=request)  # the signature first, then the caveats
    with pytest.raises(InvalidSignature):
        py_verify(forged)
    # macaroon-js refuses it too, even with every caveat the forger wrote satisfied
    satisfied = [*ARIA_CAVEATS, *(t["caveat"] for t in TAMPERINGS.values() if "caveat" in t)]
    assert macaroon_js.verify(forged, ROOT_KEY, satisfied=satisfied) is not None


@pytest.mark.parametrize("fmt", FORMATS)
def test_tampered_js_discharge_is_refused(macaroon_js: MacaroonJS, fmt: codec.Format) -> None:
    token = macaroons.mint(ROOT_KEY, TEXT_ID, ARIA_CAVEATS, LOCATION, fmt)
    token = macaroons.add_third_party_caveat(token, TP_LOCATION, CAVEAT_KEY, TP_ID, fmt)
    bound = macaroon_js.bind(
        token, macaroon_js.discharge(CAVEAT_KEY, TP_ID, DISCHARGE_CAVEATS, TP_LOCATION, fmt), fmt
    )
    forged = macaroon_js.tamper(bound, "dropCaveat", fmt, index=0)  # its expiry removed
    assert py_verify(token, discharges=[bound]).expires == NOW + 60
    with pytest.raises(DischargeError):
        py_verify(token, discharges=[forged])
    forged_root = macaroon_js.tamper(token, "dropCaveat", fmt, index=4)
    with pytest.raises(InvalidSignature):
        py_verify(forged_root, discharges=[bound])


# -- libmacaroons' README vectors in macaroon-js --------------------------------------------------


def test_js_reproduces_the_readme_vectors(macaroon_js: MacaroonJS) -> None:
    """macaroon-js computes the same signatures as libmacaroons, pymacaroons and
    aria_auth (tests/services/auth/test_vectors.py)."""
    for count, signature in enumerate(vectors.SIGNATURES):
        token = macaroon_js.mint(
            vectors.SECRET, vectors.IDENTIFIER, vectors.CAVEATS[:count], vectors.LOCATION
        )
        assert macaroon_js.inspect(token)["signature"] == signature
    root = vectors.serialize(vectors.readme_root(), "binary")  # M, with the zero nonce
    assert macaroon_js.inspect(root)["signature"] == vectors.TP_SIGNATURE
    unbound = macaroon_js.discharge(
        vectors.CAVEAT_KEY, vectors.CAVEAT_ID, [vectors.TIME], vectors.AUTH_LOCATION, "binary"
    )
    assert macaroon_js.inspect(unbound)["signature"] == vectors.DISCHARGE_SIGNATURE
    bound = macaroon_js.bind(root, unbound, "binary")
    assert macaroon_js.inspect(bound)["signature"] == vectors.BOUND_SIGNATURE
    satisfied = [vectors.ACCOUNT, vectors.TIME]
    assert macaroon_js.verify(root, vectors.TP_SECRET, [bound], satisfied) is None
    assert macaroon_js.verify(root, vectors.TP_SECRET, [unbound], satisfied) is not None
    assert vectors.verify(root, vectors.TP_SECRET, (bound,)).expires == vectors.DEADLINE


# -- the running service: its tokens, other libraries' tokens -------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tokens_of_the_running_service_interoperate(
    macaroon_js: MacaroonJS, tmp_path: Path
) -> None:
    """A pair from a node's login verifies in macaroon-js and in pymacaroons (with the
    family's root key); tokens those libraries mint under that key and identifier,
    in v2 binary and v2 JSON, verify in the node (and a weaker one is weaker)."""
    async with auth_node(tmp_path / "state") as node:
        auth = Auth(node)
        await auth.put_role("editor", ["chars:read", "chars:write"])
        await auth.create_user("alice", PASSWORD)
        await auth.assign_role("alice", "editor")
        pair = await auth.login("alice", PASSWORD)
        token = codec.decode(pair.access)
        verifier = await auth.verifier()
        state = await verifier.state(token.identifier[len(b"aria1:") :].decode())
        key = await verifier.root_key(state)
        texts = [caveat.id.decode() for caveat in token.caveats]

        assert macaroon_js.verify(pair.access, key, satisfied=texts) is None
        assert pymacaroons_verifier(texts, now=time.time()).verify(deserialize(pair.access), key)
        assert macaroon_js.verify(pair.access, bytes(32), satisfied=texts) is not None

        for fmt in FORMATS:
            from_js = macaroon_js.mint(key, token.identifier, texts, token.location, fmt)
            from_py = pymacaroons_mint(key, token.identifier, texts, fmt)
            for minted in (from_js, from_py):
                verified = await auth.verify(minted, permissions={"chars:write"})
                assert verified.principal == "alice"
            weaker = macaroon_js.attenuate(from_js, [caveats.permissions({"chars:read"})], fmt)
            await auth.verify(weaker, permissions={"chars:read"})
            with pytest.raises(PermissionDenied):
                await auth.verify(weaker, permissions={"chars:write"})
