"""Exit reasons and the message check."""

from __future__ import annotations

import msgspec
import pytest

from aria_actors import Down, Exit, ExitReason
from aria_actors._runtime.messages import NORMAL, SHUTDOWN, as_exit_reason, check_message

from .actors import Inc


def test_exit_reason_from_an_exception_keeps_type_message_and_traceback() -> None:
    try:
        raise ValueError("bad value")
    except ValueError as exc:
        reason = ExitReason.from_exception(exc, detail="in init")
    assert reason.kind == "error"
    assert reason.error_type == "ValueError"
    assert reason.error_message == "bad value"
    assert "ValueError: bad value" in reason.traceback
    assert str(reason) == "error: ValueError: bad value (in init)"


def test_exit_reason_vocabulary() -> None:
    assert NORMAL.is_normal
    assert NORMAL.is_quiet
    assert SHUTDOWN.is_quiet
    assert not SHUTDOWN.is_normal
    for kind in ("killed", "error", "noproc"):
        assert not ExitReason(kind=kind).is_quiet  # type: ignore[arg-type]
    assert str(ExitReason(kind="error", error_type="X")) == "error: X"
    assert as_exit_reason("normal") is NORMAL
    assert as_exit_reason(SHUTDOWN) is SHUTDOWN
    with pytest.raises(ValueError, match="from_exception"):
        as_exit_reason("error")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exit reason"):
        as_exit_reason("bored")  # type: ignore[arg-type]


def test_exit_reasons_are_frozen_and_encodable() -> None:
    reason = ExitReason(kind="shutdown", detail="x")
    with pytest.raises(AttributeError):
        reason.kind = "normal"  # type: ignore[misc]
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(reason), type=ExitReason)
    assert decoded == reason


def test_system_messages_are_frozen_tagged_structs() -> None:
    for cls in (Exit, Down, ExitReason):
        assert cls.__struct_config__.frozen
        assert cls.__struct_config__.tag == cls.__name__


class Loose(msgspec.Struct):
    pass


def test_check_message_accepts_frozen_structs_only() -> None:
    check_message(Inc())
    check_message(Inc())  # cached
    with pytest.raises(TypeError, match="not immutable"):
        check_message(Loose())
    with pytest.raises(TypeError, match=r"frozen msgspec\.Struct"):
        check_message({"n": 1})
