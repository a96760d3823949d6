"""Node configuration: ``load_node_config``, ``RuntimeConfig`` validation, its use by ``Node``."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from aria_actors import (
    DEFAULTS,
    Actor,
    ChildSpec,
    ConfigError,
    MailboxFull,
    Node,
    NodeConfig,
    RuntimeConfig,
    SupervisorSpec,
    handles,
)
from aria_actors._runtime.config import load_node_config
from aria_actors.resources import config_dir

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "node.toml"
    file.write_text(textwrap.dedent(text), encoding="utf-8")
    return file


def config_error(file: Path) -> str:
    """The message of the ConfigError that loading ``file`` raises; it names the file."""
    with pytest.raises(ConfigError) as caught:
        load_node_config(file)
    message = str(caught.value)
    assert message.startswith(f"{file}: ")
    return message


# ======================================================================================
# Loading
# ======================================================================================


def test_the_shipped_default_toml_is_the_built_in_default() -> None:
    assert load_node_config(ROOT / "config" / "default.toml") == NodeConfig()


def test_config_dir_finds_the_shipped_default() -> None:
    assert load_node_config(config_dir() / "default.toml") == NodeConfig()


def test_the_defaults_match_the_shared_defaults() -> None:
    runtime = NodeConfig().runtime
    assert runtime.mailbox_size == DEFAULTS.mailbox_size
    assert runtime == RuntimeConfig()


def test_a_string_path_works() -> None:
    assert load_node_config(str(ROOT / "config" / "default.toml")) == NodeConfig()


def test_an_empty_file_is_all_defaults(tmp_path: Path) -> None:
    assert load_node_config(write(tmp_path, "")) == NodeConfig()


def test_given_keys_override_the_defaults(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        """
        [runtime]
        mailbox_size = 8
        shutdown = 1
        loop_lag_interval = 0
        """,
    )
    config = load_node_config(file)
    assert config == NodeConfig(
        runtime=RuntimeConfig(mailbox_size=8, shutdown=1.0, loop_lag_interval=0.0)
    )
    assert isinstance(config.runtime.shutdown, float)
    assert config.runtime.dead_letter_logs_per_second == 10


def test_configs_are_frozen() -> None:
    config = NodeConfig()
    with pytest.raises(AttributeError):
        config.runtime = RuntimeConfig()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.runtime.mailbox_size = 3  # type: ignore[misc]


# -- errors ------------------------------------------------------------------------------


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "[runtime]\nmailbox_sise = 64\n"))
    assert "runtime.mailbox_sise" in message


def test_an_unknown_key_names_its_section_and_its_name(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "[runtime]\nmailbox_sise = 64\n"))
    assert "runtime" in message
    assert "mailbox_sise" in message


def test_an_unknown_section_is_named(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "[runtim]\nmailbox_size = 64\n"))
    assert "runtim" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("mailbox_size = 0", "runtime.mailbox_size", id="mailbox-zero"),
        pytest.param("mailbox_size = -5", "runtime.mailbox_size", id="mailbox-negative"),
        pytest.param('mailbox_size = "64"', "runtime.mailbox_size", id="mailbox-string"),
        pytest.param("mailbox_size = 1.5", "runtime.mailbox_size", id="mailbox-float"),
        pytest.param("mailbox_size = true", "runtime.mailbox_size", id="mailbox-bool"),
        pytest.param("shutdown = -1", "runtime.shutdown", id="shutdown-negative"),
        pytest.param('shutdown = "infinity"', "runtime.shutdown", id="shutdown-string"),
        pytest.param("loop_lag_interval = -0.1", "runtime.loop_lag_interval", id="lag-negative"),
        pytest.param(
            "dead_letter_logs_per_second = -1",
            "runtime.dead_letter_logs_per_second",
            id="dead-letters-negative",
        ),
    ],
)
def test_a_bad_value_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(write(tmp_path, f"[runtime]\n{text}\n"))
    assert key in message


def test_runtime_must_be_a_table(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "runtime = 3\n"))
    assert "runtime" in message
    assert "expected a table, got an integer" in message


def test_invalid_toml_is_named(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "[runtime\nmailbox_size = 64\n"))
    assert "invalid TOML" in message
    assert "line 1" in message


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "node.toml"
    file.write_bytes(b"# caf\xe9\n[runtime]\n")
    config_error(file)


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    message = config_error(missing)
    assert "cannot read" in message
    assert "No such file or directory" in message


def test_a_directory_is_an_error(tmp_path: Path) -> None:
    message = config_error(tmp_path)
    assert "cannot read" in message


def test_errors_are_chained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_node_config(write(tmp_path, "[runtime]\nmailbox_size = 0\n"))
    assert isinstance(caught.value.__cause__, msgspec.ValidationError)


# ======================================================================================
# RuntimeConfig built directly (an embedding app)
# ======================================================================================


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mailbox_size", 0),
        ("mailbox_size", -1),
        ("mailbox_size", True),
        ("shutdown", -0.5),
        ("loop_lag_interval", -1.0),
        ("dead_letter_logs_per_second", -1),
    ],
)
def test_a_bad_runtime_value_raises_value_error_naming_it(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"runtime.{field}"):
        RuntimeConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mailbox_size", "64"),
        ("mailbox_size", 1.5),
        ("shutdown", "infinity"),
        ("dead_letter_logs_per_second", 2.5),
    ],
)
def test_a_mistyped_runtime_value_is_refused_naming_it(field: str, value: Any) -> None:
    """Built directly, no decoder checks the types: ``__post_init__`` must, with a clear message."""
    with pytest.raises((TypeError, ValueError), match=f"runtime.{field}"):
        RuntimeConfig(**{field: value})


def test_unknown_runtime_keywords_are_refused() -> None:
    with pytest.raises(TypeError):
        RuntimeConfig(mailbox_sise=3)  # type: ignore[call-arg]


def test_runtime_config_takes_keywords_only() -> None:
    with pytest.raises(TypeError):
        RuntimeConfig(3)  # type: ignore[call-arg]


# ======================================================================================
# The node uses config.runtime.mailbox_size as the default bound
# ======================================================================================


class Block(msgspec.Struct, frozen=True, tag=True):
    """Make a :class:`Gate` wait until released."""


class Item(msgspec.Struct, frozen=True, tag=True):
    n: int


class Gate(Actor):
    async def init(self, entered: asyncio.Event, release: asyncio.Event) -> None:
        self.entered = entered
        self.release = release
        self.items: list[int] = []

    @handles(Block)
    async def block(self, message: Block) -> None:
        self.entered.set()
        await self.release.wait()

    @handles(Item)
    def item(self, message: Item) -> None:
        self.items.append(message.n)


async def fill_until_full(node: Node, **spawn: Any) -> int:
    """Spawn a blocked Gate and cast to it until MailboxFull; how many casts fitted."""
    entered, release = asyncio.Event(), asyncio.Event()
    ref = await node.spawn(Gate, entered=entered, release=release, **spawn)
    await ref.cast(Block())
    await asyncio.wait_for(entered.wait(), 5)
    fitted = 0
    while True:
        try:
            ref.cast_nowait(Item(n=fitted))
        except MailboxFull as error:
            full = error
            break
        fitted += 1
        assert fitted <= 100_000, "the mailbox never filled up"
    assert full.size == fitted
    assert full.actor == ref
    assert str(fitted) in str(full)
    assert ref._proc.statistics().depth == fitted
    release.set()
    return fitted


@pytest.mark.parametrize("size", [1, 5, 37])
async def test_the_configured_mailbox_size_bounds_spawned_actors(size: int) -> None:
    config = NodeConfig(runtime=RuntimeConfig(mailbox_size=size))
    async with Node(name="bounded", config=config) as node:
        assert await fill_until_full(node) == size


async def test_the_fixture_node_uses_its_configured_size(node: Node) -> None:
    assert node.config.runtime.mailbox_size == 64
    assert await fill_until_full(node) == 64


async def test_an_explicit_mailbox_size_wins_over_the_config(node: Node) -> None:
    assert await fill_until_full(node, mailbox_size=3) == 3


async def test_a_node_without_config_uses_the_default_size() -> None:
    async with Node(name="default") as node:
        assert node.config == NodeConfig()
        assert await fill_until_full(node) == DEFAULTS.mailbox_size


async def test_a_loaded_config_bounds_the_mailboxes(tmp_path: Path) -> None:
    config = load_node_config(write(tmp_path, "[runtime]\nmailbox_size = 4\n"))
    async with Node(name="loaded", config=config) as node:
        assert await fill_until_full(node) == 4


async def test_supervised_children_use_the_configured_size_too() -> None:
    config = NodeConfig(runtime=RuntimeConfig(mailbox_size=6))
    entered, release = asyncio.Event(), asyncio.Event()
    spec = SupervisorSpec(
        children=[
            ChildSpec(
                id="gate", start=Gate, name="gate", args={"entered": entered, "release": release}
            ),
            ChildSpec(
                id="small",
                start=Gate,
                name="small",
                mailbox_size=2,
                args={"entered": asyncio.Event(), "release": release},
            ),
        ]
    )
    async with Node(name="supervised", config=config) as node:
        await node.start_supervisor(spec)
        gate = node.whereis("gate")
        small = node.whereis("small")
        assert gate is not None
        assert small is not None
        assert gate._proc.statistics().size == 6
        assert small._proc.statistics().size == 2
        release.set()
