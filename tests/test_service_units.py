"""The service-manager files shipped in ``config/``: the systemd unit and the launchd plist.

The unit is parsed with the syntax of ``systemd.syntax(7)`` (sections, ``Key=value``,
``#``/``;`` comments, backslash continuations, repeatable keys) and checked for the
settings the node relies on and the hardening it promises. Where ``systemd-analyze``
is installed, systemd itself verifies the unit and scores its exposure too.
"""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aria_actors.resources import config_dir

UNIT = config_dir() / "systemd" / "aria-node.service"
PLIST = config_dir() / "launchd" / "com.aria.node.plist"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections of ``Key=value`` lists (a key may repeat), as systemd reads a unit file.

    Raises:
        ValueError: a line that is neither a section, an assignment, nor a comment.
    """
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    logical = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
        elif "=" in line and section is not None:
            key, _, value = line.partition("=")
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", key.strip()):
                raise ValueError(f"line {number}: bad key {key.strip()!r}")
            section.setdefault(key.strip(), []).append(value.strip())
        else:
            raise ValueError(f"line {number}: not a section, an assignment or a comment: {raw!r}")
    return unit


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def service(unit: Unit) -> dict[str, str]:
    """The ``[Service]`` section, one value per key (the last, as systemd keeps it)."""
    return {key: values[-1] for key, values in unit["Service"].items()}


# --- the systemd unit --------------------------------------------------------------


def test_the_parser_reads_systemd_syntax() -> None:
    text = "# c\n; c\n[Service]\nEnvironment=A=1\nEnvironment=B=2\nExecStart=/bin/x \\\n  --y\n"
    assert parse_unit(text) == {
        "Service": {"Environment": ["A=1", "B=2"], "ExecStart": ["/bin/x  --y"]}
    }
    with pytest.raises(ValueError, match="line 2"):
        parse_unit("[Service]\nnot an assignment\n")
    with pytest.raises(ValueError, match="line 1"):
        parse_unit("Type=notify\n")  # outside any section


def test_the_unit_has_its_three_sections(unit: Unit) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_no_setting_is_given_twice(unit: Unit) -> None:
    """A repeated key silently overrides (or, for lists, extends) the first one."""
    repeatable = {"Environment"}
    for section in unit.values():
        for key, values in section.items():
            assert len(values) == 1 or key in repeatable, key


REQUIRED = {
    # readiness, reload, restarts, watchdog, stop
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "Restart": "on-failure",
    "RestartSec": "2",
    "RestartPreventExitStatus": "2",
    "WatchdogSec": "30",
    "TimeoutStopSec": "60",
    "KillMode": "mixed",
    # identity and directories
    "User": "aria",
    "Group": "aria",
    "StateDirectory": "aria",
    "StateDirectoryMode": "0700",
    "RuntimeDirectory": "aria",
    "RuntimeDirectoryMode": "0700",
    "ConfigurationDirectory": "aria",
    "UMask": "0077",
    # hardening
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "SystemCallFilter": "@system-service",
}


@pytest.mark.parametrize(("key", "value"), REQUIRED.items(), ids=REQUIRED)
def test_required_service_setting(service: dict[str, str], key: str, value: str) -> None:
    assert key in service, f"[Service] has no {key}="
    assert service[key] == value


def test_exec_start_runs_aria_node_on_the_etc_config(service: dict[str, str]) -> None:
    program, *args = service["ExecStart"].split()
    assert program.startswith("/")
    assert Path(program).name == "aria-node"
    assert args == ["--config", "/etc/aria/node.toml"]


def test_address_families_are_unix_and_ip_only(service: dict[str, str]) -> None:
    assert set(service["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_environment(unit: Unit) -> None:
    assert "PYTHONUNBUFFERED=1" in unit["Service"]["Environment"]
    assert "PYTHONFAULTHANDLER=1" in unit["Service"]["Environment"]


def test_dynamic_user_is_not_mixed_with_a_static_one(service: dict[str, str]) -> None:
    assert "DynamicUser" not in service


def systemd_analyze() -> str | None:
    return shutil.which("systemd-analyze")


def installable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a program that exists here (verify checks it)."""
    copy = tmp_path / UNIT.name
    copy.write_text(
        UNIT.read_text(encoding="utf-8").replace("/usr/local/bin/aria-node", sys.executable),
        encoding="utf-8",
    )
    return copy


@pytest.mark.skipif(systemd_analyze() is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    copy = installable_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", copy.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert UNIT.name not in result.stderr, result.stderr


@pytest.mark.skipif(systemd_analyze() is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_security_exposure(tmp_path: Path) -> None:
    copy = installable_copy(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", copy.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5  # 1.5 with systemd 252; 10 is an unhardened unit


# --- the launchd plist -------------------------------------------------------------


@pytest.fixture(scope="module")
def plist() -> dict[str, Any]:
    with PLIST.open("rb") as file:
        loaded = plistlib.load(file)
    assert isinstance(loaded, dict)
    return loaded


def test_the_plist_is_named_after_its_label(plist: dict[str, Any]) -> None:
    assert plist["Label"] == "com.aria.node"
    assert PLIST.name == plist["Label"] + ".plist"


def test_the_plist_runs_aria_node_with_a_config(plist: dict[str, Any]) -> None:
    program, option, config = plist["ProgramArguments"]
    assert program.startswith("/")
    assert Path(program).name == "aria-node"
    assert option == "--config"
    assert config.startswith("/")
    assert config.endswith(".toml")


def test_the_plist_restarts_only_after_a_failure(plist: dict[str, Any]) -> None:
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert isinstance(plist["ThrottleInterval"], int)
    assert plist["ThrottleInterval"] > 0
    assert plist["ProcessType"] == "Background"


def test_the_plist_environment_and_logs(plist: dict[str, Any]) -> None:
    assert plist["EnvironmentVariables"]["PYTHONUNBUFFERED"] == "1"
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert "/Library/Logs/aria/" in plist[key]
    assert plist["StandardOutPath"] != plist["StandardErrorPath"]
    assert plist["Umask"] == 0o077


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def test_the_plist_paths_are_absolute(plist: dict[str, Any]) -> None:
    """launchd expands neither ``~`` nor ``$HOME``: a path using them would be wrong."""
    paths = [s for s in strings(plist) if "/" in s]
    assert paths
    for path in paths:
        assert path.startswith("/"), path
        assert "~" not in path, path
        assert "$" not in path, path


def test_the_documented_install_substitution_gives_a_valid_plist(tmp_path: Path) -> None:
    """``sed "s|/Users/USERNAME|$HOME|g"`` as the plist's comment says."""
    home = "/Users/ada lovelace"
    text = PLIST.read_text(encoding="utf-8")
    assert "/Users/USERNAME" in text
    installed = tmp_path / PLIST.name
    installed.write_text(text.replace("/Users/USERNAME", home), encoding="utf-8")
    with installed.open("rb") as file:
        loaded = plistlib.load(file)
    assert loaded["StandardOutPath"].startswith(home + "/Library/Logs/aria/")
    assert loaded["ProgramArguments"][2].startswith(home + "/")
    assert "USERNAME" not in installed.read_text(encoding="utf-8")
