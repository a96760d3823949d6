"""Environment overrides of the node configuration: ``ARIA_<SECTION>__<KEY>=<value>``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aria_actors import ConfigError
from aria_actors._runtime.config import load_node_config, parse_value


@pytest.fixture
def toml(tmp_path: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nname = "from-file"\n\n[runtime]\nshutdown = 3.0\n')
    return path


def test_without_overrides_the_file_rules(toml: Path) -> None:
    config = load_node_config(toml, {})
    assert config.node.name == "from-file"
    assert config.runtime.shutdown == 3.0
    assert config.runtime.mailbox_size == 1024


def test_an_integer(toml: Path) -> None:
    config = load_node_config(toml, {"ARIA_RUNTIME__MAILBOX_SIZE": "64"})
    assert config.runtime.mailbox_size == 64
    assert isinstance(config.runtime.mailbox_size, int)
    assert config.runtime.shutdown == 3.0  # the rest of the section stays


def test_a_boolean(toml: Path) -> None:
    assert load_node_config(toml, {"ARIA_CONSOLE__EVAL": "false"}).console.eval is False
    assert load_node_config(toml, {"ARIA_CONSOLE__ENABLED": "true"}).console.enabled is True


def test_a_list(toml: Path) -> None:
    config = load_node_config(toml, {"ARIA_NODE__SERVICES": '["a","b"]'})
    assert config.node.services == ("a", "b")


@pytest.mark.parametrize(
    ("value", "name"),
    [("plain-string", "plain-string"), ('"quoted"', '"quoted"'), ("x y", "x y")],
)
def test_a_text_key_takes_the_value_verbatim(toml: Path, value: str, name: str) -> None:
    assert load_node_config(toml, {"ARIA_NODE__NAME": value}).node.name == name


def test_a_float_overrides_the_file(toml: Path) -> None:
    assert load_node_config(toml, {"ARIA_RUNTIME__SHUTDOWN": "0.5"}).runtime.shutdown == 0.5


def test_names_are_case_insensitive_after_the_prefix(toml: Path) -> None:
    config = load_node_config(toml, {"ARIA_Runtime__Mailbox_Size": "7"})
    assert config.runtime.mailbox_size == 7


def test_a_section_missing_from_the_file_is_added(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    config = load_node_config(empty, {"ARIA_LOG__LEVEL": "debug", "ARIA_CONSOLE__MAX_FRAME": "128"})
    assert config.log.level == "debug"
    assert config.console.max_frame == 128


@pytest.mark.parametrize(
    "variable",
    ["ARIA_RUNTIME_MAILBOX_SIZE", "ARIA_NODE", "ARIA_", "ARIA_X", "HOME", "aria_runtime__shutdown"],
)
def test_variables_without_the_double_underscore_or_prefix_are_ignored(
    toml: Path, variable: str
) -> None:
    config = load_node_config(toml, {variable: "not a valid value"})
    assert config == load_node_config(toml, {})


def test_an_unknown_section_is_named_with_the_valid_ones(toml: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_node_config(toml, {"ARIA_BOGUS__X": "1"})
    assert str(caught.value) == (
        "ARIA_BOGUS__X: unknown section 'bogus' "
        "(expected one of: node, runtime, console, log, services)"
    )


def test_an_unknown_key_is_named_with_the_valid_ones(toml: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_node_config(toml, {"ARIA_RUNTIME__MAILBOX": "1"})
    assert str(caught.value) == (
        "ARIA_RUNTIME__MAILBOX: unknown key runtime.mailbox (expected one of: "
        "dead_letter_logs_per_second, event_loop, loop_lag_interval, mailbox_size, shutdown)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("ARIA_RUNTIME__MAILBOX_SIZE", "abc",
         "runtime.mailbox_size: expected an integer, got a string"),
        ("ARIA_RUNTIME__MAILBOX_SIZE", "0", "runtime.mailbox_size must be >= 1, got 0"),
        ("ARIA_RUNTIME__SHUTDOWN", "-1", "runtime.shutdown must be >= 0"),
        ("ARIA_RUNTIME__EVENT_LOOP", "tokio", "runtime.event_loop: invalid value 'tokio'"),
        ("ARIA_CONSOLE__MAX_FRAME", "10", "console.max_frame must be >= 64, got 10"),
        ("ARIA_CONSOLE__EVAL", "maybe", "console.eval: expected a boolean, got a string"),
        ("ARIA_LOG__LEVEL", "loud", "log.level: invalid value 'loud'"),
        ("ARIA_NODE__NAME", "a/b", "node.name must be a plain non-empty name, got 'a/b'"),
        ("ARIA_NODE__SERVICES", "db", "node.services: expected an array, got a string"),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_key_and_the_variable(
    toml: Path, variable: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_node_config(toml, {variable: value})
    message = str(caught.value)
    assert message.startswith(f"{toml}: ")
    assert problem in message
    assert message.endswith(f" (set by the environment variable {variable})")


def test_a_bad_value_in_the_file_does_not_blame_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[runtime]\nmailbox_size = 'big'\n")
    with pytest.raises(ConfigError) as caught:
        load_node_config(path, {"ARIA_RUNTIME__SHUTDOWN": "1.0"})
    assert "runtime.mailbox_size" in str(caught.value)
    assert "environment" not in str(caught.value)


def test_a_section_that_is_not_a_table_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "odd.toml"
    path.write_text('runtime = "fast"\n')
    with pytest.raises(
        ConfigError, match=re.escape("ARIA_RUNTIME__SHUTDOWN: [runtime] in the file")
    ):
        load_node_config(path, {"ARIA_RUNTIME__SHUTDOWN": "1"})


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64", 64),
        ("-1.5", -1.5),
        ("true", True),
        ('["a", 2]', ["a", 2]),
        ('"x"', "x"),
        ("x", "x"),
        ("", ""),
        ("a = b", "a = b"),
        ("{ a = 1 }", {"a": 1}),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize("text", ["inf", "nan", "1979-05-27", "12"])
def test_a_text_key_is_never_read_as_toml(toml: Path, text: str) -> None:
    """A node name that happens to look like a number, inf/nan or a date is that text."""
    assert load_node_config(toml, {"ARIA_NODE__NAME": text}).node.name == text


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("False", False), ("YES", True), ("off", False), ("1", True), ("0", False)],
)
def test_a_boolean_key_takes_the_usual_words(toml: Path, text: str, value: bool) -> None:
    assert load_node_config(toml, {"ARIA_CONSOLE__EVAL": text}).console.eval is value
