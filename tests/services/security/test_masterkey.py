"""The master key sources: a private key file, and a key wrapped by a real SoftHSM2 token."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aria_actors.services.security.api import SecretsAccessDenied, StoreCorrupt
from aria_actors.services.security.masterkey import (
    WRAP_FORMAT,
    FileMasterKey,
    MasterKey,
    MasterKeyCorrupt,
    MasterKeyError,
    MasterKeyInsecure,
    Pkcs11MasterKey,
    Pkcs11ModuleError,
    TokenLoginFailed,
    TokenNotFound,
)

from .conftest import HsmToken, mode

# -- the key file -------------------------------------------------------------------------


def test_the_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "master.key"
    key = FileMasterKey(path).load()
    assert len(key) == 32
    assert mode(path) == 0o600
    assert path.read_bytes() == key.hex().encode() + b"\n"
    assert FileMasterKey(path).load() == key
    assert FileMasterKey(path).load() == key
    assert isinstance(FileMasterKey(path), MasterKey)


def test_each_new_key_file_holds_a_new_random_key(tmp_path: Path) -> None:
    assert FileMasterKey(tmp_path / "a").load() != FileMasterKey(tmp_path / "b").load()


def test_a_key_file_without_its_final_newline_or_in_capitals_is_accepted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(b"AB" * 32)
    path.chmod(0o600)
    assert FileMasterKey(path).load() == b"\xab" * 32


@pytest.mark.parametrize("bits", [0o640, 0o604, 0o660, 0o644, 0o666, 0o610, 0o601])
def test_a_key_file_others_can_access_is_refused(tmp_path: Path, bits: int) -> None:
    path = tmp_path / "master.key"
    FileMasterKey(path).load()
    before = path.read_bytes()
    path.chmod(bits)
    with pytest.raises(MasterKeyInsecure, match=r"accessible by other users.*chmod 600"):
        FileMasterKey(path).load()
    assert path.read_bytes() == before
    assert mode(path) == bits


def test_a_key_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "master.key"
    FileMasterKey(path).load()
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(path).st_uid + 1)
    with pytest.raises(MasterKeyInsecure, match="belongs to uid"):
        FileMasterKey(path).load()


def test_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    FileMasterKey(real).load()
    link = tmp_path / "master.key"
    link.symlink_to(real)
    with pytest.raises(MasterKeyInsecure, match="symbolic link"):
        FileMasterKey(link).load()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.mkdir(mode=0o700)
    with pytest.raises(MasterKeyInsecure, match="not a regular file"):
        FileMasterKey(path).load()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"ab" * 31 + b"\n",
        b"ab" * 33 + b"\n",
        b"zz" * 32 + b"\n",
        b"ab" * 32 + b"\n\n",
        b" " + b"ab" * 32 + b"\n",
        bytes(range(32)),
        b"ab" * 16 + b"\n" + b"ab" * 16 + b"\n",
    ],
    ids=[
        "empty",
        "newline",
        "short",
        "long",
        "not-hex",
        "two-newlines",
        "leading-space",
        "raw-bytes",
        "split",
    ],
)
def test_a_malformed_key_file_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "master.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(MasterKeyCorrupt, match="64 hex digits") as caught:
        FileMasterKey(path).load()
    assert isinstance(caught.value, StoreCorrupt)
    assert path.read_bytes() == content


def test_a_key_file_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(MasterKeyError, match=r"cannot read master key file .*not-a-directory"):
        FileMasterKey(blocker / "master.key").load()


# -- PKCS#11 (a real SoftHSM2 token) ------------------------------------------------------


def hsm_key(token: HsmToken, wrapped: Path, **changes: str) -> Pkcs11MasterKey:
    settings = {
        "module": token.module,
        "token_label": token.label,
        "pin": token.pin,
        "key_label": "aria-master",
    } | changes
    return Pkcs11MasterKey(wrapped_path=wrapped, **settings)


def test_the_wrapped_master_key_round_trips(hsm_token: HsmToken, tmp_path: Path) -> None:
    wrapped = tmp_path / "state" / "master.key.wrapped"
    first = hsm_key(hsm_token, wrapped).load()
    assert len(first) == 32
    assert mode(wrapped) == 0o600
    assert hsm_key(hsm_token, wrapped).load() == first
    assert hsm_key(hsm_token, wrapped).load() == first
    assert isinstance(hsm_key(hsm_token, wrapped), MasterKey)


def test_the_wrapped_file_holds_no_clear_key(hsm_token: HsmToken, tmp_path: Path) -> None:
    wrapped = tmp_path / "master.key.wrapped"
    key = hsm_key(hsm_token, wrapped).load()
    content = wrapped.read_bytes()
    assert content.startswith(WRAP_FORMAT.encode() + b" ")
    assert key not in content
    assert key.hex().encode() not in content
    assert key.hex().upper().encode() not in content
    assert key[:8].hex().encode() not in content


def test_the_token_key_is_sensitive_and_not_extractable(
    hsm_token: HsmToken, tmp_path: Path
) -> None:
    import pkcs11
    from pkcs11 import Attribute

    hsm_key(hsm_token, tmp_path / "wrapped").load()
    token = pkcs11.lib(hsm_token.module).get_token(token_label=hsm_token.label)
    with token.open(user_pin=hsm_token.pin) as session:
        key = session.get_key(label="aria-master")
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.TOKEN] is True
        assert key[Attribute.VALUE_LEN] == 32
        with pytest.raises(pkcs11.PKCS11Error):
            key[Attribute.VALUE]


def test_two_files_wrapped_by_one_token_key_hold_different_master_keys(
    hsm_token: HsmToken, tmp_path: Path
) -> None:
    one = hsm_key(hsm_token, tmp_path / "one").load()
    two = hsm_key(hsm_token, tmp_path / "two").load()
    assert one != two
    assert hsm_key(hsm_token, tmp_path / "one").load() == one


def test_a_wrong_pin_is_a_clear_error(hsm_token: HsmToken, tmp_path: Path) -> None:
    wrapped = tmp_path / "wrapped"
    hsm_key(hsm_token, wrapped).load()
    with pytest.raises(TokenLoginFailed, match="'aria-test' refused the PIN") as caught:
        hsm_key(hsm_token, wrapped, pin="9999").load()
    assert isinstance(caught.value, SecretsAccessDenied)
    assert "9999" not in str(caught.value)
    # Nothing was created by the failed attempt on a new file either.
    with pytest.raises(TokenLoginFailed):
        hsm_key(hsm_token, tmp_path / "new", pin="9999").load()
    assert not (tmp_path / "new").exists()


def test_a_missing_token_is_a_clear_error(hsm_token: HsmToken, tmp_path: Path) -> None:
    with pytest.raises(TokenNotFound, match="no PKCS#11 token labelled 'no-such-token'"):
        hsm_key(hsm_token, tmp_path / "wrapped", token_label="no-such-token").load()
    assert not (tmp_path / "wrapped").exists()


def test_a_missing_module_is_a_clear_error(tmp_path: Path) -> None:
    key = Pkcs11MasterKey(
        module=str(tmp_path / "libnothing.so"),
        token_label="aria-test",
        pin="1234",
        key_label="aria-master",
        wrapped_path=tmp_path / "wrapped",
    )
    with pytest.raises(Pkcs11ModuleError, match="cannot load the PKCS#11 module"):
        key.load()


@pytest.mark.parametrize("position", [0, 17, 40, 79])
def test_a_tampered_wrapped_file_is_detected_and_left_alone(
    hsm_token: HsmToken, tmp_path: Path, position: int
) -> None:
    wrapped = tmp_path / "wrapped"
    hsm_key(hsm_token, wrapped).load()
    label, hex_wrap = wrapped.read_text().split()
    digit = hex_wrap[position]
    hex_wrap = hex_wrap[:position] + ("0" if digit != "0" else "1") + hex_wrap[position + 1 :]
    wrapped.write_text(f"{label} {hex_wrap}\n")
    before = wrapped.read_bytes()
    with pytest.raises(MasterKeyCorrupt, match=r"does not unwrap.*altered") as caught:
        hsm_key(hsm_token, wrapped).load()
    assert isinstance(caught.value, StoreCorrupt)
    assert wrapped.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage\n", WRAP_FORMAT.encode() + b" abcd\n", b"other/format " + b"ab" * 40 + b"\n"],
    ids=["empty", "garbage", "short", "format"],
)
def test_a_malformed_wrapped_file_is_refused(
    hsm_token: HsmToken, tmp_path: Path, content: bytes
) -> None:
    wrapped = tmp_path / "wrapped"
    wrapped.write_bytes(content)
    wrapped.chmod(0o600)
    with pytest.raises(MasterKeyCorrupt, match="wrapped master key file"):
        hsm_key(hsm_token, wrapped).load()
    assert wrapped.read_bytes() == content


def test_a_file_wrapped_by_another_token_key_is_detected(
    hsm_token: HsmToken, tmp_path: Path
) -> None:
    hsm_key(hsm_token, tmp_path / "one", key_label="first").load()
    hsm_key(hsm_token, tmp_path / "two", key_label="second").load()
    with pytest.raises(MasterKeyCorrupt, match="key 'second'"):
        hsm_key(hsm_token, tmp_path / "one", key_label="second").load()


def test_a_wrapped_file_without_its_token_key_is_a_clear_error(
    hsm_token: HsmToken, tmp_path: Path
) -> None:
    wrapped = tmp_path / "wrapped"
    hsm_key(hsm_token, wrapped).load()
    with pytest.raises(MasterKeyError, match="no key 'gone' on token 'aria-test'"):
        hsm_key(hsm_token, wrapped, key_label="gone").load()


def test_a_wrapped_file_others_can_read_is_refused(hsm_token: HsmToken, tmp_path: Path) -> None:
    wrapped = tmp_path / "wrapped"
    hsm_key(hsm_token, wrapped).load()
    wrapped.chmod(0o644)
    with pytest.raises(MasterKeyInsecure, match="accessible by other users"):
        hsm_key(hsm_token, wrapped).load()


def test_the_pin_is_not_in_the_repr(tmp_path: Path) -> None:
    key = Pkcs11MasterKey("/lib.so", "tok", "s3cr3t-pin", "label", tmp_path / "w")
    assert "s3cr3t-pin" not in repr(key)
    assert "tok" in repr(key)
