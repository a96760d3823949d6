"""TOTP (RFC 6238) and recovery codes: the RFC's vectors, the window, replays, malformed input."""

from __future__ import annotations

import base64
import hashlib
import math
import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from aria_actors.services.auth import totp
from aria_actors.services.auth.errors import MfaFailed


def b32(seed: bytes) -> str:
    return base64.b32encode(seed).decode("ascii")


SEEDS = {
    "SHA1": b32(b"12345678901234567890"),
    "SHA256": b32(b"12345678901234567890123456789012"),
    "SHA512": b32(b"1234567890123456789012345678901234567890123456789012345678901234"),
}

# RFC 6238, Appendix B: 8 digits, a 30-second period, T0 = 0.
RFC_6238 = [
    (59, "SHA1", "94287082"),
    (59, "SHA256", "46119246"),
    (59, "SHA512", "90693936"),
    (1111111109, "SHA1", "07081804"),
    (1111111109, "SHA256", "68084774"),
    (1111111109, "SHA512", "25091201"),
    (1111111111, "SHA1", "14050471"),
    (1111111111, "SHA256", "67062674"),
    (1111111111, "SHA512", "99943326"),
    (1234567890, "SHA1", "89005924"),
    (1234567890, "SHA256", "91819424"),
    (1234567890, "SHA512", "93441116"),
    (2000000000, "SHA1", "69279037"),
    (2000000000, "SHA256", "90698825"),
    (2000000000, "SHA512", "38618901"),
    (20000000000, "SHA1", "65353130"),
    (20000000000, "SHA256", "77737706"),
    (20000000000, "SHA512", "47863826"),
]

SECRET = SEEDS["SHA1"]
NOW = 1_700_000_000.0
STEP = int(NOW // 30)


@pytest.mark.parametrize(("when", "algorithm", "expected"), RFC_6238)
def test_rfc_6238_vectors(when: int, algorithm: str, expected: str) -> None:
    assert totp.code_at(SEEDS[algorithm], when, digits=8, algorithm=algorithm) == expected


@pytest.mark.parametrize(("when", "algorithm", "expected"), RFC_6238)
def test_rfc_6238_vectors_verify(when: int, algorithm: str, expected: str) -> None:
    step = totp.verify(SEEDS[algorithm], expected, when, None, digits=8, algorithm=algorithm)
    assert step == when // 30


def test_six_digits_are_the_last_six_of_eight() -> None:
    assert totp.code_at(SECRET, 59) == "287082"  # RFC 4226's HOTP value for counter 1


def test_the_code_changes_at_step_boundaries() -> None:
    assert totp.code_at(SECRET, 60.0) == totp.code_at(SECRET, 89.999)
    assert totp.code_at(SECRET, 59.999) != totp.code_at(SECRET, 60.0)


def test_verify_returns_the_current_step() -> None:
    assert totp.verify(SECRET, totp.code_at(SECRET, NOW), NOW, None) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_window_of_one_accepts_the_neighbouring_steps(offset: int) -> None:
    code = totp.code_at(SECRET, NOW + 30 * offset)
    assert totp.verify(SECRET, code, NOW, None) == STEP + offset


@pytest.mark.parametrize("offset", [-2, 2])
def test_window_of_one_refuses_two_steps_away(offset: int) -> None:
    code = totp.code_at(SECRET, NOW + 30 * offset)
    with pytest.raises(MfaFailed, match="wrong code"):
        totp.verify(SECRET, code, NOW, None)


def test_a_wider_window_accepts_two_steps_away() -> None:
    code = totp.code_at(SECRET, NOW - 60)
    assert totp.verify(SECRET, code, NOW, None, window=2) == STEP - 2


def test_window_zero_accepts_only_the_current_step() -> None:
    with pytest.raises(MfaFailed, match="wrong code"):
        totp.verify(SECRET, totp.code_at(SECRET, NOW - 30), NOW, None, window=0)
    assert totp.verify(SECRET, totp.code_at(SECRET, NOW), NOW, None, window=0) == STEP


def test_a_wrong_code_is_refused() -> None:
    good = totp.code_at(SECRET, NOW)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    with pytest.raises(MfaFailed, match="wrong code"):
        totp.verify(SECRET, wrong, NOW, None)


def test_a_code_is_accepted_once() -> None:
    code = totp.code_at(SECRET, NOW)
    step = totp.verify(SECRET, code, NOW, None)
    with pytest.raises(MfaFailed, match="already used"):
        totp.verify(SECRET, code, NOW, step)
    with pytest.raises(MfaFailed, match="already used"):  # still within the window
        totp.verify(SECRET, code, NOW + 30, step)


def test_an_earlier_step_is_refused_after_a_later_one() -> None:
    step = totp.verify(SECRET, totp.code_at(SECRET, NOW + 30), NOW, None)
    with pytest.raises(MfaFailed, match="already used"):
        totp.verify(SECRET, totp.code_at(SECRET, NOW), NOW, step)


def test_the_next_code_is_accepted_after_one_was_used() -> None:
    step = totp.verify(SECRET, totp.code_at(SECRET, NOW), NOW, None)
    assert totp.verify(SECRET, totp.code_at(SECRET, NOW + 30), NOW + 30, step) == step + 1


@pytest.mark.parametrize(
    "code",
    [
        "",
        "12345",
        "1234567",
        "12345a",
        " 123456",
        "123 456",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        "\u0660\u0661\u0662\u0663\u0664\u0665",
        "+12345",
    ],
)
def test_malformed_codes_are_refused(code: str) -> None:
    with pytest.raises(MfaFailed, match="malformed"):
        totp.verify(SECRET, code, NOW, None)


def test_a_six_digit_code_is_malformed_when_eight_are_expected() -> None:
    with pytest.raises(MfaFailed, match="8 digits"):
        totp.verify(SECRET, totp.code_at(SECRET, NOW), NOW, None, digits=8)


@pytest.mark.parametrize("secret", ["not base32!", "ABC", "MZXW6YTB0", "", "GEZDGNBV"])
def test_invalid_or_short_secrets_are_value_errors(secret: str) -> None:
    with pytest.raises(ValueError, match="TOTP secret"):
        totp.code_at(secret, NOW)
    with pytest.raises(ValueError, match="TOTP secret"):
        totp.verify(secret, "123456", NOW, None)


def test_secrets_ignore_case_padding_and_spaces() -> None:
    secret = totp.new_secret()
    spaced = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)).lower()
    assert totp.code_at(spaced, NOW) == totp.code_at(secret, NOW)
    padded = b32(b"1234567890123456")  # 16 bytes: padded base32
    assert padded.endswith("=")
    assert totp.code_at(padded, NOW) == totp.code_at(padded.rstrip("="), NOW)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"digits": 5}, "6, 7 or 8 digits"),
        ({"digits": 9}, "6, 7 or 8 digits"),
        ({"period": 0}, "period"),
        ({"algorithm": "MD5"}, "algorithm"),
        ({"algorithm": "sha1"}, "algorithm"),
    ],
)
def test_invalid_parameters_are_value_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        totp.code_at(SECRET, NOW, **kwargs)  # type: ignore[arg-type]


def test_a_negative_window_or_time_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="window"):
        totp.verify(SECRET, "123456", NOW, None, window=-1)
    with pytest.raises(ValueError, match="1970"):
        totp.code_at(SECRET, -1.0)


def test_new_secret_is_160_bits_of_unpadded_base32() -> None:
    secret = totp.new_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert len(base64.b32decode(secret)) == 20
    assert totp.new_secret() != secret


def test_provisioning_uri() -> None:
    uri = totp.provisioning_uri(SECRET, "alice@example.com")
    assert uri.startswith("otpauth://totp/Aria:alice%40example.com?")
    query = parse_qs(urlsplit(uri).query, strict_parsing=True)
    assert query == {
        "secret": [SECRET],
        "issuer": ["Aria"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }


def test_provisioning_uri_quotes_the_label_and_values() -> None:
    uri = totp.provisioning_uri(
        SECRET.lower() + "====",
        "bob smith/ops",
        issuer="Aria & Co",
        digits=8,
        period=60,
        algorithm="SHA256",
    )
    parts = urlsplit(uri)
    assert parts.path == "/Aria%20%26%20Co:bob%20smith%2Fops"
    assert unquote(parts.path) == "/Aria & Co:bob smith/ops"
    assert " " not in uri
    assert "&" not in uri.split("?")[0]
    query = parse_qs(parts.query, strict_parsing=True)
    assert query["issuer"] == ["Aria & Co"]
    assert query["secret"] == [SECRET]
    assert query["digits"] == ["8"]
    assert query["period"] == ["60"]
    assert query["algorithm"] == ["SHA256"]


@pytest.mark.parametrize(
    ("account", "issuer"), [("", "Aria"), ("a:b", "Aria"), ("alice", ""), ("alice", "A:B")]
)
def test_provisioning_uri_refuses_colons_and_empty_names(account: str, issuer: str) -> None:
    with pytest.raises(ValueError, match="':'"):
        totp.provisioning_uri(SECRET, account, issuer=issuer)


def test_provisioning_uri_refuses_a_bad_secret() -> None:
    with pytest.raises(ValueError, match="base32"):
        totp.provisioning_uri("not base32!", "alice")


# -- recovery codes -------------------------------------------------------------------------


def test_recovery_codes_are_unique_and_well_formed() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    alphabet = re.escape(totp.RECOVERY_ALPHABET)
    for code in codes:
        assert re.fullmatch(rf"[{alphabet}]{{6}}-[{alphabet}]{{6}}", code), code
    assert len(totp.new_recovery_codes(3)) == 3


def test_recovery_codes_have_at_least_50_bits() -> None:
    symbols = 2 * totp.RECOVERY_GROUP
    assert symbols * math.log2(len(totp.RECOVERY_ALPHABET)) >= 50
    assert not set("01oli") & set(totp.RECOVERY_ALPHABET)
    assert len(set(totp.RECOVERY_ALPHABET)) == len(totp.RECOVERY_ALPHABET)


def test_recovery_codes_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="1 or more"):
        totp.new_recovery_codes(0)


def test_recovery_code_hash_is_sha256_of_the_normalized_code() -> None:
    expected = hashlib.sha256(b"k7m2qdx9hwpa").hexdigest()
    assert totp.hash_recovery_code("k7m2qd-x9hwpa") == expected
    for variant in ["  K7M2QD-X9HWPA\n", "k7m2qd x9hwpa", "k7m2-qdx9-hwpa", "K7M2QDX9HWPA"]:
        assert totp.hash_recovery_code(variant) == expected


def test_an_empty_recovery_code_cannot_be_hashed() -> None:
    with pytest.raises(ValueError, match="empty"):
        totp.hash_recovery_code(" - ")


def test_recovery_codes_match_once() -> None:
    codes = totp.new_recovery_codes()
    hashes = [totp.hash_recovery_code(code) for code in codes]
    index = totp.match_recovery_code(codes[3].upper().replace("-", " "), hashes)
    assert index == 3
    del hashes[index]  # the caller's part: a recovery code works once
    assert totp.match_recovery_code(codes[3], hashes) is None
    assert totp.match_recovery_code(codes[4], hashes) == 3


def test_unknown_or_empty_recovery_codes_match_nothing() -> None:
    hashes = [totp.hash_recovery_code(code) for code in totp.new_recovery_codes()]
    assert totp.match_recovery_code("aaaaaa-aaaaaa", hashes) is None
    assert totp.match_recovery_code("", hashes) is None
    assert totp.match_recovery_code("--", hashes) is None
    assert totp.match_recovery_code("aaaaaa-aaaaaa", []) is None


def test_an_empty_code_never_matches_a_stored_empty_hash() -> None:
    assert totp.match_recovery_code("", [hashlib.sha256(b"").hexdigest()]) is None
