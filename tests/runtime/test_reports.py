"""Dead-letter logging is rate limited; crash reports never fail on a broken repr."""

from __future__ import annotations

from typing import Any

from aria_actors._runtime.reports import DeadLetterLog, short_repr


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_short_repr_cuts_and_survives_broken_reprs() -> None:
    assert short_repr("x" * 1000, limit=10) == "'xxxxxx..."
    assert "repr failed" in short_repr(BadRepr())


def test_dead_letters_are_logged_up_to_a_rate_then_summarised(
    logs: list[dict[str, Any]],
) -> None:
    log = DeadLetterLog(per_second=3)
    for n in range(10):
        log.record("<actor x>", n, "the actor is not alive")
    assert [e["message"] for e in logs if e["event"] == "dead_letter"] == ["0", "1", "2"]
    assert log.suppressed == 7
    log.window -= 2  # a second later
    log.record("<actor x>", 10, "the actor is not alive")
    assert {"event": "dead_letters_suppressed", "count": 7, "log_level": "warning"} in logs
    assert logs[-1]["message"] == "10"
