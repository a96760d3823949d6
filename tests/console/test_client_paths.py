"""Finding a node (client.locate), where a node keeps its files (paths), and the cookie."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from aria_actors import ConfigError, NodeConfig
from aria_actors._runtime.config import NodeSection
from aria_actors.console.client import locate
from aria_actors.console.cookie import load_or_create_cookie, read_cookie
from aria_actors.paths import (
    COOKIE_NAME,
    MAX_SOCKET_PATH,
    NODE_FILE_NAME,
    SOCKET_NAME,
    default_runtime_dir,
    default_state_dir,
    ensure_private_dir,
    runtime_dir,
    socket_path,
    state_dir,
)

from .helpers import COOKIE

linux_only = pytest.mark.skipif(sys.platform == "darwin", reason="macOS keeps state elsewhere")
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="making a file another user's takes root (chown)"
)
OTHER_UID = 54321


def write_cookie(path: Path, text: str = COOKIE, mode: int = 0o600) -> Path:
    path.write_text(text + "\n", encoding="ascii")
    path.chmod(mode)
    return path


def make_state(directory: Path, socket: str = "/run/aria/x/control.sock", node: str = "x") -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / NODE_FILE_NAME).write_text(json.dumps({"socket": socket, "node": node}))
    write_cookie(directory / COOKIE_NAME)
    return directory


# -- locate --------------------------------------------------------------------------------------


@linux_only
def test_locate_by_node_name_in_the_xdg_state_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}
    make_state(tmp_path / "state" / "aria" / "shop", socket="/run/shop.sock", node="shop")
    target = locate(node="shop", environ=env)
    assert (target.socket, target.cookie, target.node) == (Path("/run/shop.sock"), COOKIE, "shop")


@linux_only
def test_locate_defaults_to_the_node_aria_under_home(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    make_state(tmp_path / ".local" / "state" / "aria" / "aria", node="aria")
    target = locate(environ=env)
    assert target.node == "aria"
    assert target.cookie == COOKIE


def test_locate_by_state_dir(tmp_path: Path) -> None:
    state = make_state(tmp_path / "somewhere", socket=str(tmp_path / "s.sock"), node="")
    target = locate(state_dir=state, node="named", environ={"HOME": "/nonexistent"})
    assert target.socket == tmp_path / "s.sock"
    assert target.node == "named"  # node.json did not say
    target = locate(state_dir=str(state), environ={})
    assert target.node == ""


def test_locate_by_state_dir_with_another_cookie_file(tmp_path: Path) -> None:
    state = make_state(tmp_path / "state")
    other = write_cookie(tmp_path / "other-cookie", "f" * 64)
    assert locate(state_dir=state, cookie_file=other, environ={}).cookie == "f" * 64


def test_locate_by_socket_and_cookie_file(tmp_path: Path) -> None:
    cookie = write_cookie(tmp_path / "cookie")
    target = locate(socket=tmp_path / "c.sock", cookie_file=cookie, environ={})
    assert (target.socket, target.cookie, target.node) == (tmp_path / "c.sock", COOKIE, None)


def test_locate_by_socket_and_state_dir(tmp_path: Path) -> None:
    state = make_state(tmp_path / "state")
    target = locate(socket=str(tmp_path / "c.sock"), state_dir=state, environ={})
    assert target.socket == tmp_path / "c.sock"
    assert target.cookie == COOKIE


@linux_only
def test_locate_by_socket_and_node_name_reads_that_nodes_cookie(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    make_state(tmp_path / ".local" / "state" / "aria" / "shop")
    target = locate(socket="/tmp/x.sock", node="shop", environ=env)
    assert (target.socket, target.node, target.cookie) == (Path("/tmp/x.sock"), "shop", COOKIE)


def test_locate_with_a_socket_needs_cookie_information(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="with --socket, give --cookie-file or --state-dir too"):
        locate(socket=tmp_path / "c.sock", environ={})


def test_locate_without_node_file_says_the_node_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        locate(state_dir=tmp_path, environ={})
    message = str(caught.value)
    assert "no node is running" in message
    assert str(tmp_path / NODE_FILE_NAME) in message
    assert "start one with aria-node" in message


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '"text"', '{"node": "x"}', '{"socket": 5}', ""],
    ids=["not json", "a list", "a string", "no socket", "socket not a path", "empty"],
)
def test_locate_with_an_unreadable_node_file(tmp_path: Path, content: str) -> None:
    state = make_state(tmp_path)
    (state / NODE_FILE_NAME).write_text(content)
    with pytest.raises(ConfigError, match=r"unreadable node file") as caught:
        locate(state_dir=state, environ={})
    assert str(state / NODE_FILE_NAME) in str(caught.value)


def test_locate_with_a_node_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / NODE_FILE_NAME).mkdir()
    with pytest.raises(ConfigError, match="unreadable node file"):
        locate(state_dir=tmp_path, environ={})


def test_locate_refuses_a_cookie_open_to_others(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    (state / COOKIE_NAME).chmod(0o644)
    with pytest.raises(ConfigError) as caught:
        locate(state_dir=state, environ={})
    message = str(caught.value)
    assert "can be read by other users (mode 644)" in message
    assert f"chmod 600 {state / COOKIE_NAME}" in message


def test_locate_with_a_missing_cookie(tmp_path: Path) -> None:
    state = make_state(tmp_path)
    (state / COOKIE_NAME).unlink()
    with pytest.raises(ConfigError, match="does not exist"):
        locate(state_dir=state, environ={})


# -- paths ---------------------------------------------------------------------------------------


def config(state_dir: str = "", runtime_dir: str = "") -> NodeConfig:
    return NodeConfig(node=NodeSection(name="shop", state_dir=state_dir, runtime_dir=runtime_dir))


def test_state_dir_precedence(tmp_path: Path) -> None:
    env = {
        "HOME": "/home/u",
        "XDG_STATE_HOME": "/xdg/state",
        "STATE_DIRECTORY": "/var/lib/shop:/var/lib/other",
    }
    assert state_dir(config(state_dir="/configured"), env) == Path("/configured")
    assert state_dir(config(state_dir="~/st"), env) == Path("~/st").expanduser()
    assert state_dir(config(), env) == Path("/var/lib/shop")
    del env["STATE_DIRECTORY"]
    if sys.platform == "darwin":
        expected = Path("/home/u/Library/Application Support/aria/shop")
        assert state_dir(config(), env) == expected
        return
    assert state_dir(config(), env) == Path("/xdg/state/aria/shop")
    del env["XDG_STATE_HOME"]
    assert state_dir(config(), env) == Path("/home/u/.local/state/aria/shop")
    assert default_state_dir("n", {"HOME": "", "XDG_STATE_HOME": ""}) == (
        Path.home() / ".local" / "state" / "aria" / "n"
    )


def test_runtime_dir_precedence() -> None:
    env = {
        "RUNTIME_DIRECTORY": "/run/shop:/run/other",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "TMPDIR": "/scratch",
    }
    assert runtime_dir(config(runtime_dir="/configured"), env) == Path("/configured")
    assert runtime_dir(config(), env) == Path("/run/shop")
    del env["RUNTIME_DIRECTORY"]
    assert runtime_dir(config(), env) == Path("/run/user/1000/aria/shop")
    del env["XDG_RUNTIME_DIR"]
    assert runtime_dir(config(), env) == Path(f"/scratch/aria-{os.getuid()}/shop")
    fallback = default_runtime_dir("n", {})
    assert fallback.parent.name == f"aria-{os.getuid()}"
    assert fallback.name == "n"


def test_empty_systemd_variables_are_ignored() -> None:
    env = {"STATE_DIRECTORY": "", "RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": "/r", "HOME": "/h"}
    assert runtime_dir(config(), env) == Path("/r/aria/shop")
    assert state_dir(config(), env) == default_state_dir("shop", env)


def test_ensure_private_dir_creates_it_0700(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    assert ensure_private_dir(path, "state directory") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert ensure_private_dir(path, "state directory") == path  # again: fine


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701])
def test_ensure_private_dir_refuses_a_directory_open_to_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "open"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        ensure_private_dir(path, "runtime directory")
    message = str(caught.value)
    assert message.startswith(f"runtime directory {path} is open to other users (mode {mode:o})")
    assert f"chmod 700 {path}" in message


def test_ensure_private_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"state directory .* cannot create it"):
        ensure_private_dir(blocker / "sub", "state directory")


@needs_root
def test_ensure_private_dir_refuses_another_users_directory(tmp_path: Path) -> None:
    path = tmp_path / "theirs"
    path.mkdir(mode=0o700)
    os.chown(path, OTHER_UID, -1)
    with pytest.raises(ConfigError, match=f"belongs to uid {OTHER_UID}, not to this user"):
        ensure_private_dir(path, "state directory")


def test_socket_path_fits_a_unix_socket(tmp_path: Path) -> None:
    assert socket_path(Path("/run/aria")) == Path("/run/aria") / SOCKET_NAME
    longest = "/" + "d" * (MAX_SOCKET_PATH - 3 - len(SOCKET_NAME))  # 103 bytes in all
    assert len(os.fsencode(socket_path(Path(longest)))) == MAX_SOCKET_PATH - 1
    with pytest.raises(ConfigError) as caught:
        socket_path(Path(longest + "d"))
    message = str(caught.value)
    assert f"({MAX_SOCKET_PATH} bytes, the limit is {MAX_SOCKET_PATH - 1})" in message
    assert "set node.runtime_dir to a shorter directory" in message


# -- the cookie ----------------------------------------------------------------------------------


def test_the_cookie_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / COOKIE_NAME
    cookie = load_or_create_cookie(path)
    assert re.fullmatch(r"[0-9a-f]{64}", cookie)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_cookie(path) == cookie
    assert read_cookie(path) == cookie
    assert load_or_create_cookie(tmp_path / "another") != cookie


def test_the_cookie_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_cookie(tmp_path / COOKIE_NAME)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / COOKIE_NAME).stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_cookie_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_cookie(tmp_path / COOKIE_NAME, mode=mode)
    for load in (load_or_create_cookie, read_cookie):
        with pytest.raises(ConfigError, match=f"mode {mode:o}.*run: chmod 600 {path}"):
            load(path)


@pytest.mark.parametrize("text", ["", "  ", "\n\n"], ids=["empty", "spaces", "newlines"])
def test_an_empty_cookie_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / COOKIE_NAME
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is empty"):
        load_or_create_cookie(path)


def test_a_cookie_that_is_not_ascii_is_refused(tmp_path: Path) -> None:
    path = tmp_path / COOKIE_NAME
    path.write_bytes(b"caf\xc3\xa9")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="cannot read it"):
        read_cookie(path)


def test_a_cookie_in_a_missing_directory_cannot_be_created(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot create it"):
        load_or_create_cookie(tmp_path / "missing" / COOKIE_NAME)


@needs_root
def test_another_users_cookie_is_refused(tmp_path: Path) -> None:
    path = write_cookie(tmp_path / COOKIE_NAME)
    os.chown(path, OTHER_UID, -1)
    with pytest.raises(ConfigError, match=f"belongs to uid {OTHER_UID}, not to this user"):
        read_cookie(path)
