"""An ephemeral PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl`` in a temp dir.

The cluster listens on a Unix socket in a short private directory and on one free TCP
port of 127.0.0.1 (never another address). Local (socket) connections are trusted;
TCP connections need a password (scram-sha-256): the superuser ``postgres`` and the
ordinary role ``aria`` both have a random one.

initdb refuses to run as root, so as root the cluster runs as the ``postgres`` system
user (created when it does not exist); as anyone else it runs as that user. The binaries
are looked up on PATH and in Debian's ``/usr/lib/postgresql/<version>/bin``.

The shared test cluster turns off ``fsync``, ``synchronous_commit`` and
``full_page_writes`` to start and run fast; ``durable=True`` keeps PostgreSQL's
defaults, for the tests that kill the server and count on committed data surviving.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from ._util import (
    LOOPBACK,
    ComponentMissing,
    ServerFailed,
    clean_env,
    free_port,
    short_tempdir,
    tail,
    wait_for,
)

INSTALL_HINT = "install the PostgreSQL server (Debian: apt-get install -y postgresql): make servers"
OS_USER = "postgres"
SUPERUSER = "postgres"
PASSWORD_ROLE = "aria"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

StopMode = Literal["smart", "fast", "immediate"]


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl``, ``postgres`` and ``psql``.

    ``$ARIA_PG_BINDIR`` wins; then ``initdb`` on PATH (symlinks resolved, so Debian's
    versioned directory is found behind a link); then the newest
    ``/usr/lib/postgresql/<version>/bin``.
    """
    candidates: list[Path] = []
    if env := os.environ.get("ARIA_PG_BINDIR"):
        candidates.append(Path(env))
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).resolve().parent)
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if p.name.replace(".", "").isdigit()]
        versions.sort(key=lambda p: [int(x) for x in p.name.split(".")], reverse=True)
        candidates.extend(p / "bin" for p in versions)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise ComponentMissing("PostgreSQL (initdb, pg_ctl, postgres)", INSTALL_HINT)


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier; only plain names are accepted."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a plain SQL name: {name!r}")
    return f'"{name}"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _os_user() -> tuple[int, int] | None:
    """(uid, gid) to run the cluster as, or None to run it as ourselves (not root).

    As root, the ``postgres`` system user is created when it does not exist.
    """
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(OS_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        home, shell = "/var/lib/postgresql", "/usr/sbin/nologin"
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "-d",
                home,
                "-s",
                shell,
                OS_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        try:
            entry = pwd.getpwnam(OS_USER)  # another process may have created it meanwhile
        except KeyError:
            raise ServerFailed(
                f"initdb cannot run as root and the {OS_USER!r} user could not be created: "
                f"{result.stderr.strip()}"
            ) from None
    return entry.pw_uid, entry.pw_gid


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process from /proc, None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _family(pid: int) -> set[int]:
    """The postmaster, its children and every process of its process group."""
    family = {pid}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and (stat[1] == pid or stat[2] == pid):
            family.add(int(entry.name))
    return family


class PostgresCluster:
    """One PostgreSQL cluster in a temp dir; ``start()`` runs initdb the first time.

    Use it as a context manager, or call ``start()`` and ``destroy()``.
    """

    def __init__(self, *, durable: bool = False, start_timeout: float = 60.0) -> None:
        self.durable = durable
        self.start_timeout = start_timeout
        self.bindir = find_bindir()
        self._owner = _os_user()
        self._base: Path | None = None
        self._port = 0
        self._initialized = False
        self.superuser = SUPERUSER
        self.superuser_password = secrets.token_urlsafe(18)
        self.password_role = PASSWORD_ROLE
        self.password = secrets.token_urlsafe(18)

    # -- where it is ------------------------------------------------------------

    @property
    def base_dir(self) -> Path:
        if self._base is None:
            raise ServerFailed("the cluster was never started")
        return self._base

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory of the Unix socket ``.s.PGSQL.<port>``."""
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._port

    @property
    def dsn(self) -> str:
        """The superuser's DSN to the ``postgres`` database over the Unix socket."""
        return self.socket_dsn()

    def socket_dsn(self, database: str = "postgres", user: str | None = None) -> str:
        """A DSN over the Unix socket (trusted: no password), for asyncpg or libpq."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{user or self.superuser}@/{database}?host={host}&port={self._port}"

    def tcp_dsn(
        self, database: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        """A DSN over TCP on 127.0.0.1 with a password (the ``aria`` role's by default)."""
        if user is None:
            user, password = self.password_role, self.password
        elif password is None and user == self.superuser:
            password = self.superuser_password
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        return f"postgresql://{auth}@{LOOPBACK}:{self._port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid from ``postmaster.pid``, None when there is none."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (OSError, ServerFailed):
            return None
        return int(first) if first.strip().isdigit() else None

    def is_running(self) -> bool:
        pid = self.pid
        return pid is not None and _alive(pid)

    # -- running commands ----------------------------------------------------------

    def _run(
        self, argv: list[str], *, as_owner: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if as_owner and self._owner is not None:
            kwargs.update(user=self._owner[0], group=self._owner[1], extra_groups=[])
        try:
            return subprocess.run(
                argv,
                cwd=self.base_dir,
                env=clean_env(("PG",)) | {"LC_ALL": "C", "LANG": "C"},
                capture_output=True,
                text=True,
                check=False,
                timeout=timeout,
                **kwargs,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerFailed(f"{argv[0]} did not finish in {timeout:.0f} s") from exc

    def _tool(self, name: str) -> str:
        path = self.bindir / name
        if os.access(path, os.X_OK):
            return str(path)
        found = shutil.which(name)
        if found is None:
            raise ComponentMissing(f"PostgreSQL's {name}", INSTALL_HINT)
        return found

    # -- life cycle ------------------------------------------------------------------

    def _initdb(self) -> None:
        self._base = short_tempdir("aria-pg-")
        self.socket_dir.mkdir()
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        if self._owner is not None:
            for path in (self.base_dir, self.socket_dir, pwfile):
                os.chown(path, *self._owner)
        argv = [self._tool("initdb"), "-D", str(self.data_dir), "-U", self.superuser]
        argv += ["--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256"]
        argv += ["--locale=C", "--encoding=UTF8"]
        if not self.durable:
            argv.append("--no-sync")
        result = self._run(argv, as_owner=True, timeout=120)
        pwfile.unlink()
        if result.returncode != 0:
            raise ServerFailed(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        (self.data_dir / "pg_hba.conf").write_text(
            f"local all all trust\nhost all all {LOOPBACK}/32 scram-sha-256\n"
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'aria_test.conf'\n")
        self._initialized = True

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": f"'{LOOPBACK}'",
            "port": str(self._port),
            "unix_socket_directories": quote_literal(str(self.socket_dir)),
            "max_connections": "100",
            "shared_buffers": "32MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "password_encryption": "'scram-sha-256'",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        path = self.data_dir / "aria_test.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        if self._owner is not None:
            os.chown(path, *self._owner)

    def start(self) -> None:
        """Start the cluster (initdb the first time); again after stop() or kill()."""
        if self.is_running():
            return
        first = not self._initialized
        if first:
            self._initdb()
        attempts = 3 if first else 1
        for attempt in range(attempts):
            if first:
                self._port = free_port()
                self._write_settings()
            self._clear_stale_locks()
            argv = [self._tool("pg_ctl"), "start", "-D", str(self.data_dir)]
            argv += ["-l", str(self.log_file), "-w", "-t", str(int(self.start_timeout))]
            result = self._run(argv, as_owner=True, timeout=self.start_timeout + 10)
            if result.returncode == 0:
                break
            log = tail(self.log_file)
            if "already in use" in log and attempt + 1 < attempts:
                continue
            raise ServerFailed(f"pg_ctl start failed:\n{result.stdout}{result.stderr}\n{log}")
        if first:
            self.create_role(self.password_role, self.password)

    def stop(self, mode: StopMode = "fast", timeout: float = 30.0) -> None:
        """Stop the server with ``pg_ctl stop -m MODE``; kill() it if that fails."""
        if not self.is_running():
            return
        argv = [self._tool("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode]
        argv += ["-w", "-t", str(int(timeout))]
        result = self._run(argv, as_owner=True, timeout=timeout + 10)
        if result.returncode != 0 and self.is_running():
            self.kill()

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the postmaster and its backends at once (a hard crash).

        The next start() runs crash recovery; the stale ``postmaster.pid`` and socket
        lock files are removed so that it is not refused.
        """
        pid = self.pid
        if pid is None or not _alive(pid):
            self._clear_stale_locks()
            return
        family = _family(pid)
        for target in sorted(family):
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        wait_for(
            lambda: not any(_alive(p) for p in _family(pid) | family),
            timeout=timeout,
            what="PostgreSQL processes after SIGKILL",
        )
        self._clear_stale_locks()

    def _clear_stale_locks(self) -> None:
        if self._base is None or self.is_running():
            return
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "postmaster.pid").unlink()
        for lock in self.socket_dir.glob(".s.PGSQL.*"):
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()

    def destroy(self) -> None:
        """Stop the server (immediately) and delete its directory."""
        if self._base is None:
            return
        with contextlib.suppress(ServerFailed, OSError):
            self.stop("immediate", timeout=15)
        if self.is_running():
            self.kill()
        shutil.rmtree(self._base, ignore_errors=True)
        self._base = None
        self._initialized = False

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- SQL -------------------------------------------------------------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the socket; the unaligned, tuples-only output."""
        argv = [self._tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", str(self.socket_dir), "-p", str(self._port), "-U", self.superuser]
        argv += ["-d", database, "-c", sql]
        result = self._run(argv, as_owner=False, timeout=60)
        if result.returncode != 0:
            raise ServerFailed(f"psql failed ({sql!r}): {result.stderr.strip()}")
        return result.stdout.strip()

    def create_role(self, name: str, password: str, superuser: bool = False) -> None:
        """A login role with a password (TCP connections need it)."""
        kind = "SUPERUSER" if superuser else "NOSUPERUSER"
        secret = quote_literal(password)
        self.psql(f"CREATE ROLE {quote_ident(name)} LOGIN {kind} PASSWORD {secret}")

    def create_database(self, name: str, owner: str | None = None) -> str:
        """Create an empty database; return the superuser's socket DSN to it."""
        sql = f"CREATE DATABASE {quote_ident(name)}"
        if owner is not None:
            sql += f" OWNER {quote_ident(owner)}"
        self.psql(sql)
        return self.socket_dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        self.psql(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
