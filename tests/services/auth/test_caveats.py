"""aria_auth's caveat language: every caveat kind, the refusals, the writers, and the
property that makes offline attenuation safe: adding caveats never widens a token.

Raise the property's example count with ``ARIA_FUZZ_EXAMPLES``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aria_actors.services.auth import caveats as language
from aria_actors.services.auth import codec, macaroons
from aria_actors.services.auth.caveats import Grant, Request, check, within
from aria_actors.services.auth.errors import (
    AuthError,
    CaveatUnmet,
    InvalidToken,
    PermissionDenied,
    TokenExpired,
    TokenNotYetValid,
)

FUZZ_EXAMPLES = int(os.environ.get("ARIA_FUZZ_EXAMPLES", "300"))
ROOT_KEY = b"k" * 32
T0 = 1_800_000_000  # 2027-01-15T08:00:00Z
T0_TEXT = "2027-01-15T08:00:00Z"


def run(*texts: str | bytes, principal: str | None = None, **request: object) -> Grant:
    raw = [t.encode() if isinstance(t, str) else t for t in texts]
    request.setdefault("now", float(T0))
    return check(raw, Request(**request), principal)  # type: ignore[arg-type]


def denied(
    error: type[AuthError], *texts: str | bytes, principal: str | None = None, **request: object
) -> AuthError:
    """``check`` raises exactly ``error`` (not a subclass of it)."""
    with pytest.raises(error) as info:
        run(*texts, principal=principal, **request)
    assert type(info.value) is error, repr(info.value)
    return info.value


def test_time_format_is_what_the_table_says() -> None:
    assert language.format_time(T0) == T0_TEXT
    assert language.parse_time(T0_TEXT) == T0


def test_no_caveats_grant_everything() -> None:
    grant = run(permissions=frozenset({"anything"}), service="svc")
    assert grant == Grant(permissions=None, expires=None, services=set())


# -- user -------------------------------------------------------------------------------------


def test_user_holds_for_its_principal() -> None:
    assert run("user = bob", principal="bob").permissions is None


@pytest.mark.parametrize("principal", [None, "alice", "bob ", "Bob", ""])
def test_user_fails_for_anyone_else(principal: str | None) -> None:
    error = denied(CaveatUnmet, "user = bob", principal=principal)
    assert isinstance(error, CaveatUnmet)
    assert error.caveat == "user = bob"
    assert "bob" in str(error)


def test_two_user_caveats_hold_only_if_equal() -> None:
    run("user = bob", "user = bob", principal="bob")
    denied(CaveatUnmet, "user = bob", "user = alice", principal="bob")


# -- permissions ------------------------------------------------------------------------------


def test_permissions_hold_for_a_subset() -> None:
    for needed in (set(), {"read"}, {"read", "write"}):
        grant = run("permissions = read write", permissions=frozenset(needed))
        assert grant.permissions == frozenset({"read", "write"})


def test_permissions_fail_for_one_missing() -> None:
    error = denied(
        PermissionDenied, "permissions = read", permissions=frozenset({"read", "delete", "admin"})
    )
    assert error.caveat == "permissions = read"
    assert "admin, delete" in str(error)


def test_permissions_intersect() -> None:
    texts = ("permissions = a b c", "permissions = b c d", "permissions = c b x")
    assert run(*texts, permissions=frozenset({"b", "c"})).permissions == frozenset({"b", "c"})
    for one in ("a", "d", "x"):
        error = denied(PermissionDenied, *texts, permissions=frozenset({one}))
        assert one not in error.caveat.split(" = ")[1].split()


def test_disjoint_permissions_grant_nothing_but_hold_for_nothing_needed() -> None:
    grant = run("permissions = a", "permissions = b")
    assert grant.permissions == frozenset()
    denied(PermissionDenied, "permissions = a", "permissions = b", permissions=frozenset({"a"}))


def _short_names(count: int) -> list[str]:
    """``count`` distinct two-character permission names (short enough to fit)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return [a + b for a in alphabet for b in alphabet][:count]


def test_too_many_permissions_in_one_caveat() -> None:
    names = _short_names(language.MAX_PERMISSIONS)
    run("permissions = " + " ".join(names), permissions=frozenset({names[0]}))
    too_many = "permissions = " + " ".join([*names, "x-"])
    assert len(too_many) <= language.MAX_CAVEAT
    error = denied(CaveatUnmet, too_many, permissions=frozenset())
    assert error.caveat == too_many
    assert f"more than {language.MAX_PERMISSIONS}" in str(error)


# -- service ----------------------------------------------------------------------------------


def test_service_holds_for_its_audience() -> None:
    assert run("service = storage", service="storage").services == {"storage"}


@pytest.mark.parametrize("service", ["", "api", "Storage", "storage "])
def test_service_fails_elsewhere(service: str) -> None:
    error = denied(PermissionDenied, "service = storage", service=service)
    assert error.caveat == "service = storage"


def test_two_services_never_hold_together() -> None:
    for service in ("a", "b"):
        denied(PermissionDenied, "service = a", "service = b", service=service)


# -- time-before / time-after -------------------------------------------------------------------


def test_time_before_holds_until_the_second() -> None:
    grant = run(f"time-before = {T0_TEXT}", now=T0 - 0.001)
    assert grant.expires == T0


@pytest.mark.parametrize("now", [T0, T0 + 0.5, T0 + 10**6])
def test_time_before_fails_at_and_after(now: float) -> None:
    error = denied(TokenExpired, f"time-before = {T0_TEXT}", now=now)
    assert error.caveat == f"time-before = {T0_TEXT}"
    assert T0_TEXT in str(error)


def test_earliest_time_before_is_the_expiry() -> None:
    texts = [language.time_before(T0 + 100), language.time_before(T0 + 50)]
    assert run(*texts).expires == T0 + 50
    assert run(*reversed(texts)).expires == T0 + 50
    error = denied(TokenExpired, *texts, now=T0 + 60)
    assert error.caveat == language.time_before(T0 + 50)


@pytest.mark.parametrize("now", [T0, T0 + 0.5, T0 + 10**6])
def test_time_after_holds_from_the_second(now: float) -> None:
    run(f"time-after = {T0_TEXT}", now=now)


def test_time_after_fails_before() -> None:
    error = denied(TokenNotYetValid, f"time-after = {T0_TEXT}", now=T0 - 0.001)
    assert error.caveat == f"time-after = {T0_TEXT}"


def test_time_window() -> None:
    texts = (language.time_after(T0), language.time_before(T0 + 10))
    run(*texts, now=T0 + 5)
    denied(TokenNotYetValid, *texts, now=T0 - 1)
    denied(TokenExpired, *texts, now=T0 + 10)


def test_wall_clock_when_the_request_has_no_time() -> None:
    past, future = language.time_before(946684800), language.time_before(32503680000)
    check([future.encode()], Request(), None)
    with pytest.raises(TokenExpired):
        check([past.encode()], Request(), None)
    with pytest.raises(TokenNotYetValid):
        check([language.time_after(time.time() + 10**6).encode()], Request(), None)


@pytest.mark.parametrize(
    "value",
    [
        "2027-02-30T00:00:00Z",  # no such day
        "2027-01-15T24:00:00Z",
        "2027-01-15T23:59:60Z",
        "2027-01-15 08:00:00Z",
        "2027-01-15T08:00:00",
        "2027-01-15T08:00:00+00:00",
        "2027-01-15T08:00:00.5Z",
        "2027-1-15T08:00:00Z",
        "1800000000",
        "2027-01-15T08:00:00Z\n",
        "\u0662\u0660\u0662\u0667-01-15T08:00:00Z",  # Arabic-Indic digits match \d
        "0000-01-01T00:00:00Z",
        "tomorrow",
    ],
)
@pytest.mark.parametrize("name", ["time-before", "time-after"])
def test_malformed_times_are_unmet(name: str, value: str) -> None:
    """Not expired, not 'not yet valid': a malformed caveat, so plain CaveatUnmet."""
    text = f"{name} = {value}"
    error = denied(CaveatUnmet, text, now=0.0)
    assert error.caveat == text
    assert language.parse_time(value) is None


# -- confine-K --------------------------------------------------------------------------------


def test_confine_holds_for_the_same_value() -> None:
    run("confine-ip = 10.0.0.7", confined={"ip": "10.0.0.7", "other": "x"})
    run("confine-user-string = a b = c", confined={"user-string": "a b = c"})


@pytest.mark.parametrize(
    "confined",
    [{}, {"ip": "10.0.0.8"}, {"ip": "10.0.0.7 "}, {"IP": "10.0.0.7"}, {"ip2": "10.0.0.7"}],
)
def test_confine_fails_otherwise(confined: dict[str, str]) -> None:
    error = denied(CaveatUnmet, "confine-ip = 10.0.0.7", confined=confined)
    assert error.caveat == "confine-ip = 10.0.0.7"


def test_confine_is_not_fooled_by_other_request_fields() -> None:
    denied(CaveatUnmet, "confine-ip = x", resources={"ip": "x"}, service="x")


# -- scope-K ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource", ["/chars/hero", "/chars/hero/", "/chars/hero/index.caibx", "/chars/hero/a/b"]
)
def test_scope_holds_under_its_prefix(resource: str) -> None:
    run("scope-storage = /chars/hero", resources={"storage": resource})


@pytest.mark.parametrize(
    "resource",
    [
        "/chars/heroine",
        "/chars/heroine/x",
        "/chars",
        "/chars/her",
        "/chars/hero/../heroine",
        "/chars/hero/..",
        "/chars/hero/./x",
        "chars/hero/x",
        "",
    ],
)
def test_scope_fails_outside(resource: str) -> None:
    error = denied(PermissionDenied, "scope-storage = /chars/hero", resources={"storage": resource})
    assert error.caveat == "scope-storage = /chars/hero"


def test_scope_fails_without_a_resource_of_its_kind() -> None:
    denied(PermissionDenied, "scope-storage = /", resources={})
    denied(PermissionDenied, "scope-storage = /", resources={"db": "/x"})
    run("scope-storage = /", "scope-db = /x", resources={"storage": "/y", "db": "/x/1"})


def test_two_scopes_of_one_kind_intersect() -> None:
    texts = ("scope-storage = /chars", "scope-storage = /chars/hero")
    run(*texts, resources={"storage": "/chars/hero/x"})
    denied(PermissionDenied, *texts, resources={"storage": "/chars/other"})


@pytest.mark.parametrize(
    ("resource", "prefix", "expected"),
    [
        ("/chars/hero", "/chars/hero", True),
        ("/chars/hero/", "/chars/hero", True),
        ("/chars/hero", "/chars/hero/", True),
        ("/chars/hero/x", "/chars/hero/", True),
        ("/chars/hero/x/y.caibx", "/chars", True),
        ("/anything", "/", True),
        ("/", "/", True),
        ("/chars/heroine", "/chars/hero", False),
        ("/chars/heroine", "/chars/hero/", False),
        ("/chars/hero", "/chars/heroine", False),
        ("/chars/her", "/chars/hero", False),
        ("/chars", "/chars/hero", False),
        ("/chars/hero/../heroine", "/chars/hero", False),
        ("/chars/hero/../../etc/passwd", "/chars/hero", False),
        ("/chars/hero/..", "/chars/hero", False),
        ("/chars/hero/.", "/chars/hero", False),
        ("/chars/hero/./x", "/chars/hero", False),
        ("/chars/hero/..x", "/chars/hero", True),  # a name starting with dots, not ..
        ("/chars/hero/x..", "/chars/hero", True),
        ("chars/hero", "chars/hero", False),  # prefixes are absolute
        ("/chars/hero", "chars/hero", False),
        ("/x", "", False),
        ("/CHARS/hero", "/chars", False),
    ],
)
def test_within(resource: str, prefix: str, expected: bool) -> None:
    assert within(resource, prefix) is expected


# -- unknown and malformed caveats --------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "foo = bar",
        "user=bob",
        "user =bob",
        "user bob",
        "user = ",
        "",
        " = x",
        "USER = bob",
        " user = bob",
        "permissions =",
        "confine-IP = 10.0.0.7",  # keys are lower case
        "confine- = x",
        "confine-_x = y",
        "scope- = /x",
        "scope-Storage = /x",
        "scope-" + "k" * 65 + " = /x",
        "time_before = 2027-01-15T08:00:00Z",
        "expires = 2099-01-01T00:00:00Z",
        "aria-caveats",
    ],
)
def test_unknown_caveats_are_denied(text: str) -> None:
    error = denied(CaveatUnmet, text, principal="bob", confined={"IP": "10.0.0.7", "": "x"})
    assert error.caveat == text


def test_unknown_caveat_denied_whatever_else_holds() -> None:
    ok = ("user = bob", "permissions = read", "service = api")
    run(*ok, principal="bob", service="api")
    denied(CaveatUnmet, *ok, "mystery = 1", principal="bob", service="api")
    denied(CaveatUnmet, "mystery = 1", *ok, principal="bob", service="api")


def test_the_first_unmet_caveat_is_the_one_reported() -> None:
    error = denied(TokenExpired, language.time_before(T0 - 1), "mystery = 1")
    assert error.caveat == language.time_before(T0 - 1)
    error = denied(CaveatUnmet, "mystery = 1", language.time_before(T0 - 1))
    assert error.caveat == "mystery = 1"


@pytest.mark.parametrize("raw", [b"user = \xff", b"\xc3\x28 = x", b"confine-ip = \xed\xa0\x80"])
def test_non_utf8_caveat_is_unmet(raw: bytes) -> None:
    error = denied(CaveatUnmet, raw, principal="bob")
    assert "not UTF-8" in str(error)
    assert error.caveat == repr(raw)


def test_oversized_caveat_is_unmet() -> None:
    value = "x" * (language.MAX_CAVEAT - len("confine-k = "))
    fits = f"confine-k = {value}"
    assert len(fits.encode()) == language.MAX_CAVEAT
    run(fits, confined={"k": value})
    error = denied(CaveatUnmet, fits + "x", confined={"k": value + "x"})
    assert f"at most {language.MAX_CAVEAT}" in str(error)


def test_oversized_caveat_counts_bytes_not_characters() -> None:
    value = "é" * ((language.MAX_CAVEAT - len("confine-k = ")) // 2 + 1)
    denied(CaveatUnmet, f"confine-k = {value}", confined={"k": value})


# -- the language version -----------------------------------------------------------------------


def test_language_version_1_holds() -> None:
    assert language.LANGUAGE == "aria-caveats = 1"
    run(language.LANGUAGE, "user = bob", principal="bob")
    run("user = bob", language.LANGUAGE, principal="bob")


@pytest.mark.parametrize("value", ["2", "0", "01", "1.0", "1 ", "v1", "99999999999999999999999"])
def test_other_language_versions_are_unreadable(value: str) -> None:
    with pytest.raises(InvalidToken) as info:
        run(f"aria-caveats = {value}")
    assert type(info.value) is InvalidToken
    assert "caveat language" in str(info.value)


def test_language_version_is_checked_wherever_it_stands() -> None:
    with pytest.raises(InvalidToken):
        run("permissions = a", "aria-caveats = 2", "permissions = a")


def test_language_version_through_verify() -> None:
    token = macaroons.mint(ROOT_KEY, b"v2", ["aria-caveats = 2", "user = bob"])
    with pytest.raises(InvalidToken, match="caveat language"):
        macaroons.verify(codec.decode(token), ROOT_KEY, (), Request(now=T0), "bob")
    token = macaroons.mint(ROOT_KEY, b"v1", [language.LANGUAGE, "user = bob"])
    macaroons.verify(codec.decode(token), ROOT_KEY, (), Request(now=T0), "bob")


# -- writers ----------------------------------------------------------------------------------


def test_writers_write_the_language() -> None:
    assert language.user("bob") == "user = bob"
    assert language.permissions(["write", "read", "write"]) == "permissions = read write"
    assert language.service("storage") == "service = storage"
    assert language.time_before(T0) == f"time-before = {T0_TEXT}"
    assert language.time_after(T0) == f"time-after = {T0_TEXT}"
    # never valid earlier than asked: time-after rounds up, time-before down
    assert language.time_after(T0 - 0.1) == f"time-after = {T0_TEXT}"
    assert language.time_before(T0 + 0.9) == f"time-before = {T0_TEXT}"
    assert language.confine("ip", "10.0.0.7") == "confine-ip = 10.0.0.7"
    assert language.scope("storage", "/chars/hero") == "scope-storage = /chars/hero"


def test_what_the_writers_write_holds_for_the_matching_request() -> None:
    texts = [
        language.user("bob"),
        language.permissions(["read", "write"]),
        language.service("api"),
        language.time_before(T0 + 1),
        language.time_after(T0),
        language.confine("user-string", "agent 1.0 (x)"),
        language.scope("storage", "/chars/hero"),
    ]
    grant = run(
        *texts,
        principal="bob",
        permissions=frozenset({"read"}),
        service="api",
        confined={"user-string": "agent 1.0 (x)"},
        resources={"storage": "/chars/hero/1"},
    )
    assert grant == Grant(frozenset({"read", "write"}), T0 + 1, {"api"})


@pytest.mark.parametrize(
    "write",
    [
        lambda: language.user(""),
        lambda: language.user("bob smith"),
        lambda: language.user("x" * 129),
        lambda: language.user("bob = alice"),
        lambda: language.permissions(["read", "bad name"]),
        lambda: language.permissions([""]),
        lambda: language.permissions(["a\nb"]),
        lambda: language.permissions(["p" * 129]),
        lambda: language.permissions(_short_names(language.MAX_PERMISSIONS + 1)),
        lambda: language.permissions([f"p{i}" for i in range(250)]),  # over MAX_CAVEAT bytes
        lambda: language.service(""),
        lambda: language.service("a/b"),
        lambda: language.confine("IP", "x"),
        lambda: language.confine("", "x"),
        lambda: language.confine("-ip", "x"),
        lambda: language.confine("i p", "x"),
        lambda: language.confine("k" * 65, "x"),
        lambda: language.confine("ip", ""),
        lambda: language.confine("ip", " 10.0.0.7"),
        lambda: language.confine("ip", "10.0.0.7 "),
        lambda: language.confine("ip", "10.0.0.7\n"),
        lambda: language.confine("ip", "a\x00b"),
        lambda: language.confine("ip", "a\x7fb"),
        lambda: language.confine("ip", "x" * language.MAX_CAVEAT),
        lambda: language.scope("storage", "chars/hero"),
        lambda: language.scope("storage", ""),
        lambda: language.scope("Storage", "/x"),
        lambda: language.scope("storage", "/x "),
        lambda: language.scope("storage", "/" + "x" * language.MAX_CAVEAT),
        lambda: language.time_before(float("nan")),
        lambda: language.time_before(253402300800),  # year 10000
    ],
)
def test_writers_validate(write: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies
        write()  # type: ignore[operator]


def test_writer_limits_are_inclusive() -> None:
    names = _short_names(language.MAX_PERMISSIONS)
    assert language.permissions(names).startswith("permissions = a0 a1 ")
    assert language.user("x" * 128) == "user = " + "x" * 128
    assert language.confine("k" * 64, "v") == f"confine-{'k' * 64} = v"
    text = language.confine("k", "x" * (language.MAX_CAVEAT - len("confine-k = ")))
    assert len(text) == language.MAX_CAVEAT


# -- edge cases --------------------------------------------------------------------------------


def test_empty_permissions_grant_nothing() -> None:
    """``permissions([])`` writes ``permissions = ``: a token good for no permission
    (requests that need none still pass), never an unrestricted one."""
    text = language.permissions([])
    assert text == "permissions = "
    assert run(text).permissions == frozenset()
    error = denied(PermissionDenied, text, permissions=frozenset({"read"}))
    assert error.caveat == text
    assert run("permissions = a b", text).permissions == frozenset()


def test_permissions_ignore_extra_spaces() -> None:
    assert run("permissions = a  b ").permissions == frozenset({"a", "b"})
    denied(PermissionDenied, "permissions = a  b", permissions=frozenset({""}))


@pytest.mark.parametrize(
    "write",
    [
        lambda: language.user("bob\n"),
        lambda: language.service("api\n"),
        lambda: language.permissions(["read\n"]),
        lambda: language.confine("ip\n", "x"),
        lambda: language.scope("storage\n", "/x"),
    ],
)
def test_writers_refuse_a_trailing_newline(write: object) -> None:
    """``re.match("^...$")`` would match ``"bob\\n"``: the names are checked whole."""
    with pytest.raises(ValueError):  # noqa: PT011
        write()  # type: ignore[operator]


def test_check_reads_a_key_with_a_trailing_newline_as_unknown() -> None:
    """``scope-storage\\n`` is no scope kind: the caveat is unknown, and denied."""
    error = denied(CaveatUnmet, "scope-storage\n = /x", resources={"storage": "/x"})
    assert "unknown caveat" in str(error)
    assert not isinstance(error, PermissionDenied)
    denied(CaveatUnmet, "confine-ip\n = x", confined={"ip": "x"})


def test_infinite_time_is_a_value_error() -> None:
    for when in (float("inf"), float("nan"), -1.0, 1e12):
        with pytest.raises(ValueError, match="1970 to 9999"):
            language.time_before(when)
        with pytest.raises(ValueError, match="1970 to 9999"):
            language.time_after(when)


def test_writers_never_write_an_unreadable_time() -> None:
    """A time the reader could not parse (before 1970, year 10000 on) is refused by
    the writer; every time it accepts reads back."""
    with pytest.raises(ValueError):  # noqa: PT011
        language.time_before(-50_000_000_000)
    for when in (0, 1, T0, 253402300799):
        text = language.time_before(when)
        assert language.parse_time(text.partition(" = ")[2]) == when, text


def test_time_after_rounds_up() -> None:
    """Whole seconds: time-after rounds up, so a token never becomes valid earlier
    than asked (time-before rounds down, never later)."""
    text = language.time_after(T0 + 0.1)
    denied(TokenNotYetValid, text, now=T0 + 0.5)  # before the time asked for: not valid
    run(text, now=T0 + 1)


def test_a_resource_that_is_not_a_path_is_within_no_scope() -> None:
    assert within("", "/") is False
    assert within("", "//") is False
    assert within("chars/hero", "/") is False


# -- attenuation never widens -------------------------------------------------------------------

_USERS = ["alice", "bob"]
_PERMS = ["read", "write", "admin", "delete"]
_SERVICES = ["api", "storage"]
_TIMES = [T0 + k * 100 for k in range(-2, 3)]
_KEYS = ["ip", "ua"]
_VALUES = ["a", "b"]
_KINDS = ["storage", "db"]
_PREFIXES = ["/", "/chars", "/chars/hero", "/chars/heroine", "/chars/hero/x"]
_PATHS = [
    "/",
    "/chars",
    "/chars/hero",
    "/chars/hero/x",
    "/chars/hero/x/1",
    "/chars/heroine",
    "/chars/hero/../heroine",
    "/other",
]

_caveat = st.one_of(
    st.sampled_from(_USERS).map(language.user),
    st.lists(st.sampled_from(_PERMS), max_size=4).filter(bool).map(language.permissions),
    st.sampled_from(_SERVICES).map(language.service),
    st.sampled_from(_TIMES).map(language.time_before),
    st.sampled_from(_TIMES).map(language.time_after),
    st.builds(language.confine, st.sampled_from(_KEYS), st.sampled_from(_VALUES)),
    st.builds(language.scope, st.sampled_from(_KINDS), st.sampled_from(_PREFIXES)),
    st.one_of(  # unknown or malformed: always denied
        st.sampled_from(
            [
                "mystery = 1",
                "user=bob",
                "time-before = 2027-02-30T00:00:00Z",
                "confine-IP = a",
                "permissions = ",
                "aria-caveats = 1",
                "aria-caveats = 2",
            ]
        ),
        st.text(max_size=20),
    ),
)


@dataclass(frozen=True)
class _Case:
    request: Request
    principal: str | None


_case = st.builds(
    _Case,
    request=st.builds(
        Request,
        service=st.sampled_from(["", *_SERVICES]),
        permissions=st.frozensets(st.sampled_from(_PERMS), max_size=3),
        resources=st.dictionaries(st.sampled_from(_KINDS), st.sampled_from(_PATHS), max_size=2),
        confined=st.dictionaries(st.sampled_from(_KEYS), st.sampled_from(_VALUES), max_size=2),
        now=st.sampled_from(_TIMES).flatmap(lambda t: st.sampled_from([t - 1.0, t, t + 1.0])),
    ),
    principal=st.sampled_from([None, *_USERS]),
)


def _outcomes(token: str, cases: list[_Case]) -> list[Grant | None]:
    """For each case, the grant of a verified token, or None if it was refused."""
    decoded = codec.decode(token)
    results: list[Grant | None] = []
    for case in cases:
        try:
            results.append(macaroons.verify(decoded, ROOT_KEY, (), case.request, case.principal))
        except (CaveatUnmet, InvalidToken):
            results.append(None)
    return results


def _narrower(after: frozenset[str] | None, before: frozenset[str] | None) -> bool:
    """Whether ``after`` grants no more than ``before`` (None: unrestricted)."""
    if before is None:
        return True
    return after is not None and after <= before


def _fitting(texts: list[str], needed: frozenset[str]) -> _Case:
    """A request that meets as many of ``texts`` as one can (so that the property
    compares tokens that accept something, not only refusals)."""
    principal: str | None = None
    service = ""
    granted: set[str] | None = None
    confined: dict[str, str] = {}
    resources: dict[str, str] = {}
    after, before = float(T0), None
    for text in texts:
        name, _, value = text.partition(" = ")
        when = language.parse_time(value)
        if name == "user" and principal is None:
            principal = value
        elif name == "service" and not service:
            service = value
        elif name == "permissions":
            names = set(value.split())
            granted = names if granted is None else granted & names
        elif name == "time-after" and when is not None:
            after = max(after, when)
        elif name == "time-before" and when is not None:
            before = when if before is None else min(before, when)
        elif name.startswith("confine-"):
            confined.setdefault(name[8:], value)
        elif name.startswith("scope-"):
            resources.setdefault(name[6:], value)
    now = after if before is None or after < before else before - 1
    permissions = needed if granted is None else needed & granted
    return _Case(Request(service, frozenset(permissions), resources, confined, now), principal)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    base=st.lists(_caveat, max_size=4),
    steps=st.lists(st.lists(_caveat, max_size=2), min_size=1, max_size=4),
    cases=st.lists(_case, max_size=6),
    needed=st.frozensets(st.sampled_from(_PERMS), max_size=2),
)
def test_attenuation_never_widens(
    base: list[str], steps: list[list[str]], cases: list[_Case], needed: frozenset[str]
) -> None:
    every = [*base, *(caveat for step in steps for caveat in step)]
    cases = [*cases, _fitting(base, needed), _fitting([*base, *steps[0]], needed)]
    cases += [_fitting(every, needed), _fitting(every, frozenset())]
    token = macaroons.mint(ROOT_KEY, b"family-1", base)
    before = _outcomes(token, cases)
    for step in steps:
        token = macaroons.attenuate(token, step)
        after = _outcomes(token, cases)
        for old, new in zip(before, after, strict=True):
            if new is None:
                continue
            assert old is not None, f"attenuating with {step} accepted a refused request"
            assert _narrower(new.permissions, old.permissions), (step, old, new)
            assert old.expires is None or (new.expires is not None and new.expires <= old.expires)
            assert new.services >= old.services
        before = after


def test_attenuation_property_can_fail() -> None:
    """The helpers of the property see a real narrowing (so a widening would show)."""
    case = _Case(Request(permissions=frozenset({"read"}), now=float(T0)), "bob")
    token = macaroons.mint(ROOT_KEY, b"f", [language.permissions(["read", "write"])])
    (before,) = _outcomes(token, [case])
    assert before is not None
    assert before.permissions == frozenset({"read", "write"})
    narrower = macaroons.attenuate(token, [language.permissions(["read"])])
    (after,) = _outcomes(narrower, [case])
    assert after is not None
    assert after.permissions == frozenset({"read"})
    assert _narrower(after.permissions, before.permissions)
    assert not _narrower(before.permissions, after.permissions)
    assert not _narrower(None, after.permissions)
    (refused,) = _outcomes(macaroons.attenuate(token, ["mystery = 1"]), [case])
    assert refused is None
