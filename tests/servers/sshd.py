"""A real SFTP server for the tests: OpenSSH's ``sshd`` (Debian: openssh-server).

``SshServer()`` makes a temp dir with an ed25519 host key, an ed25519 client key
(``client_key``), ``authorized_keys`` holding it, a ``known_hosts`` holding the host
key (``[127.0.0.1]:<port> ...``) and an ``sshd_config``; ``start()`` runs
``/usr/sbin/sshd -D -e -f <config> -p <port>`` on 127.0.0.1 and waits for its banner.
Only public-key logins of the current user are accepted (``PermitRootLogin
prohibit-password`` for root), SFTP is ``internal-sftp``, there is no PAM and no
strict modes. sshd wants its privilege separation directory (``/run/sshd``): it is
made when missing (which needs root).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from pathlib import Path

from ._util import (
    LOOPBACK,
    ChildServer,
    ComponentMissing,
    ServerFailed,
    free_port,
    short_tempdir,
    tail,
    wait_for,
)

INSTALL_HINT = "sudo apt-get install openssh-server (or make servers)"

PRIVSEP_DIR = Path("/run/sshd")


def find_sshd() -> str:
    """sshd (an absolute path: sshd refuses to run otherwise)."""
    for path in ("/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("sshd")
    if found:
        return os.path.abspath(found)
    raise ComponentMissing("OpenSSH's sshd", INSTALL_HINT)


def find_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise ComponentMissing("OpenSSH's ssh-keygen", INSTALL_HINT)
    return found


def _keygen(keygen: str, path: Path, comment: str) -> None:
    result = subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise ServerFailed(f"ssh-keygen failed: {result.stderr.strip()}")


class SshServer(ChildServer):
    """sshd on a free loopback port, for SFTP; see the module documentation."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self.binary = find_sshd()
        self.keygen = find_keygen()
        self.start_timeout = start_timeout
        self.user = getpass.getuser()
        self._base = short_tempdir("aria-sshd-")
        self._port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        _keygen(self.keygen, self.host_key, "aria-test-host")
        _keygen(self.keygen, self.client_key, "aria-test-client")
        self.authorized_keys.write_text(self.client_key.with_suffix(".pub").read_text())
        os.chmod(self.authorized_keys, 0o600)

    # -- where it is ----------------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        return self._base

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._port

    @property
    def host_key(self) -> Path:
        return self._base / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        """The private key the server accepts for :attr:`user`."""
        return self._base / "client_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self._base / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file naming this server's host key (written by start())."""
        return self._base / "known_hosts"

    @property
    def log_file(self) -> Path:
        return self._base / "sshd.log"

    @property
    def config_file(self) -> Path:
        return self._base / "sshd_config"

    def host_key_line(self) -> str:
        """The host key as a known_hosts line for this server."""
        public = self.host_key.with_suffix(".pub").read_text().split()
        return f"[{LOOPBACK}]:{self._port} {public[0]} {public[1]}\n"

    # -- life cycle -----------------------------------------------------------------------

    def _write_config(self) -> None:
        lines = [
            f"ListenAddress {LOOPBACK}",
            f"HostKey {self.host_key}",
            f"PidFile {self._base / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            f"AllowUsers {self.user}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "StrictModes no",
            "UsePAM no",
            "UseDNS no",
            "PrintMotd no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "MaxStartups 100:30:200",
            "MaxSessions 64",
            "LogLevel INFO",
            "Subsystem sftp internal-sftp",
        ]
        self.config_file.write_text("\n".join(lines) + "\n")

    def _banner(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self._port), timeout=2.0) as sock:
                return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def _dead(self) -> str | None:
        if self._proc is None or self._proc.poll() is None:
            return None
        return f"sshd exited with status {self._proc.returncode}:\n{tail(self.log_file)}"

    def start(self) -> None:
        if self.is_running():
            return
        if not PRIVSEP_DIR.is_dir():
            try:
                PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
            except OSError as exc:
                raise ServerFailed(f"sshd needs {PRIVSEP_DIR}: cannot make it: {exc}") from exc
        self._write_config()
        first = self._port == 0
        for attempt in range(3 if first else 1):
            if first:
                self._port = free_port()
            argv = [self.binary, "-D", "-e", "-f", str(self.config_file), "-p", str(self._port)]
            with self.log_file.open("ab") as log:
                self._proc = subprocess.Popen(
                    argv,
                    cwd=self._base,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_for(
                    self._banner,
                    timeout=self.start_timeout,
                    what=f"sshd on {LOOPBACK}:{self._port}",
                    alive=self._dead,
                )
                break
            except ServerFailed:
                self.kill()
                if first and attempt < 2 and "in use" in tail(self.log_file):
                    continue
                raise
        self.known_hosts.write_text(self.host_key_line())
