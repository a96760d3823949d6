"""Pytest fixtures for the real servers (a plugin: the root conftest.py loads it).

========================  ========  =====================================================
fixture                   scope     gives
========================  ========  =====================================================
``postgres``              session   a running ``PostgresCluster`` (fast, not durable)
``pg_database``           function  a fresh empty database in it (``PgDatabase``), dropped
``postgres_factory``      function  ``postgres_factory(durable=True)``: extra clusters
                                    (their own data dirs) to stop, kill and restart
``openbao``               session   an ``OpenBaoServer`` in dev mode (in memory)
``openbao_persistent``    function  an ``OpenBaoServer`` with raft storage, initialized
                                    and unsealed; survives stop()/start(), can be sealed
``softhsm``               function  an initialized ``SoftHsmToken``; ``SOFTHSM2_CONF`` set
``moto_s3``               session   a ``MotoServer``: moto's S3 API (in memory, any
                                    credentials) on a free loopback port
``s3_bucket``             function  a fresh empty bucket on it (``S3Bucket``), removed
``sshd``                  session   an ``SshServer``: OpenSSH's sshd (SFTP) on a free
                                    loopback port, public-key login of the current user
``sftp_target``           function  a fresh empty directory on it and what a client needs
                                    to log in (``SftpTarget``: key, known_hosts)
========================  ========  =====================================================

A missing component fails the fixture in CI (``CI=true``) and skips the test elsewhere.
Every server is stopped on teardown, whatever the test did; a test may stop, kill or
seal the servers it was given (the shared ones are started again when needed).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeVar

import pytest

from ._util import ComponentMissing
from .moto import MotoServer
from .openbao import OpenBaoServer
from .postgres import PostgresCluster
from .softhsm import SoftHsmToken
from .sshd import SshServer

T = TypeVar("T")

STARTUP_TIMES: dict[str, list[float]] = {}
"""Seconds each kind of server took to start in this session (for reports)."""


def missing(exc: ComponentMissing) -> NoReturn:
    """In CI a missing component is a failure, never a skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {exc}", pytrace=False)
    pytest.skip(str(exc))


def _started(kind: str, make: Callable[[], T]) -> T:
    """Build and start a server, timing it; a missing component fails or skips."""
    began = time.perf_counter()
    absent: ComponentMissing | None = None
    try:
        server = make()
    except ComponentMissing as exc:
        absent = exc
    if absent is not None:
        missing(absent)  # outside the except block: no chained traceback
    STARTUP_TIMES.setdefault(kind, []).append(time.perf_counter() - began)
    return server


@contextlib.contextmanager
def _cleanup(destroy: Callable[[], None]) -> Iterator[None]:
    """Run ``destroy`` on teardown, and at exit should the teardown never run."""
    atexit.register(destroy)
    try:
        yield
    finally:
        atexit.unregister(destroy)
        destroy()


# -- PostgreSQL ---------------------------------------------------------------------


@dataclass(frozen=True)
class PgDatabase:
    """A fresh database of the shared cluster, owned by the password role ``aria``."""

    name: str
    dsn: str
    """The superuser over the Unix socket (trusted, no password): asyncpg.connect(dsn)."""
    tcp_dsn: str
    """The owner (``aria``) over TCP on 127.0.0.1 with its password."""
    owner: str
    cluster: PostgresCluster


def _new_cluster(durable: bool) -> PostgresCluster:
    cluster = PostgresCluster(durable=durable)
    try:
        cluster.start()
    except BaseException:
        cluster.destroy()
        raise
    return cluster


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the whole session (fsync off), destroyed at the end."""
    cluster = _started("postgres", lambda: _new_cluster(durable=False))
    with _cleanup(cluster.destroy):
        yield cluster


@pytest.fixture
def pg_database(postgres: PostgresCluster) -> Iterator[PgDatabase]:
    """A new empty database for this test; dropped afterwards (connections or not)."""
    if not postgres.is_running():  # an earlier test stopped or killed the shared cluster
        postgres.start()
    name = f"aria_t_{secrets.token_hex(6)}"
    postgres.create_database(name, owner=postgres.password_role)
    try:
        yield PgDatabase(
            name=name,
            dsn=postgres.socket_dsn(name),
            tcp_dsn=postgres.tcp_dsn(name),
            owner=postgres.password_role,
            cluster=postgres,
        )
    finally:
        if not postgres.is_running():
            postgres.start()
        postgres.drop_database(name)


class PostgresFactory:
    """Makes started clusters of their own; all destroyed when the test ends."""

    def __init__(self) -> None:
        self.clusters: list[PostgresCluster] = []

    def __call__(self, *, durable: bool = True) -> PostgresCluster:
        cluster = _started("postgres", lambda: _new_cluster(durable=durable))
        self.clusters.append(cluster)
        return cluster

    def destroy(self) -> None:
        for cluster in self.clusters:
            cluster.destroy()


@pytest.fixture
def postgres_factory() -> Iterator[PostgresFactory]:
    """``postgres_factory(durable=True)``: a cluster a test may stop, kill and restart."""
    factory = PostgresFactory()
    with _cleanup(factory.destroy):
        yield factory


# -- OpenBao --------------------------------------------------------------------------


def _new_openbao(persistent: bool) -> OpenBaoServer:
    server = OpenBaoServer(persistent=persistent)
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """One OpenBao dev server for the session (in memory: a restart loses its data)."""
    server = _started("openbao-dev", lambda: _new_openbao(persistent=False))
    with _cleanup(server.destroy):
        yield server


@pytest.fixture
def openbao_persistent() -> Iterator[OpenBaoServer]:
    """An OpenBao server of this test's own, on raft storage, initialized and unsealed."""
    server = _started("openbao-persistent", lambda: _new_openbao(persistent=True))
    with _cleanup(server.destroy):
        yield server


# -- SoftHSM2 ---------------------------------------------------------------------------


def _new_token() -> SoftHsmToken:
    token = SoftHsmToken()
    try:
        token.init()
    except BaseException:
        token.destroy()
        raise
    return token


@pytest.fixture
def softhsm(monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsmToken]:
    """A fresh token (label ``aria-test``, PIN 1234, SO PIN 5678) in its own directory.

    ``SOFTHSM2_CONF`` points at it for the test (subprocesses inherit it); use
    ``softhsm.open_lib()`` / ``softhsm.token()`` for python-pkcs11 in the test process.
    """
    token = _started("softhsm", _new_token)
    monkeypatch.setenv("SOFTHSM2_CONF", str(token.conf))
    with _cleanup(token.destroy):
        yield token


# -- S3 (moto) and SFTP (OpenSSH) -------------------------------------------------------


class _Server(Protocol):
    def start(self) -> None: ...
    def destroy(self) -> None: ...


S = TypeVar("S", bound=_Server)


def _new_server(make: Callable[[], S]) -> S:
    """Build and start a server; destroyed again if its start fails."""
    server = make()
    try:
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoServer]:
    """One moto S3 server for the session (in memory; any credentials are accepted)."""
    server = _started("moto", lambda: _new_server(MotoServer))
    with _cleanup(server.destroy):
        yield server


@dataclass(frozen=True)
class S3Bucket:
    """A bucket of this test's own on the session's moto server."""

    name: str
    endpoint: str
    """``http://127.0.0.1:<port>``"""
    access_key: str
    secret_key: str
    region: str
    server: MotoServer

    def location(self, prefix: str = "") -> str:
        """desync's URL of a store in the bucket: ``s3+http://127.0.0.1:<port>/<bucket>/<prefix>``."""
        tail = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        return f"s3+{self.endpoint}/{self.name}{tail}"


@pytest.fixture
def s3_bucket(moto_s3: MotoServer) -> Iterator[S3Bucket]:
    """A new empty bucket; emptied and removed afterwards."""
    from .moto import ACCESS_KEY, REGION, SECRET_KEY

    if not moto_s3.is_running():  # an earlier test stopped or killed the shared server
        moto_s3.start()
    name = moto_s3.create_bucket()
    try:
        yield S3Bucket(name, moto_s3.endpoint, ACCESS_KEY, SECRET_KEY, REGION, moto_s3)
    finally:
        moto_s3.delete_bucket(name)


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """One sshd for the session (SFTP; public-key login of the current user only)."""
    server = _started("sshd", lambda: _new_server(SshServer))
    with _cleanup(server.destroy):
        yield server


@dataclass(frozen=True)
class SftpTarget:
    """A fresh directory on the session's sshd, and how to log in to it."""

    host: str
    port: int
    user: str
    path: str
    """The directory (absolute; it exists and is empty; the server is this machine)."""
    key_filename: str
    known_hosts: str
    server: SshServer

    @property
    def url(self) -> str:
        """``sftp://user@127.0.0.1:<port>/<path>``"""
        return f"sftp://{self.user}@{self.host}:{self.port}{self.path}"


@pytest.fixture
def sftp_target(sshd: SshServer) -> Iterator[SftpTarget]:
    """A new empty directory on the sshd server; deleted afterwards."""
    if not sshd.is_running():  # an earlier test stopped or killed the shared server
        sshd.start()
    directory = sshd.base_dir / "stores" / secrets.token_hex(6)
    directory.mkdir(parents=True)
    try:
        yield SftpTarget(
            host=sshd.host,
            port=sshd.port,
            user=sshd.user,
            path=str(directory),
            key_filename=str(sshd.client_key),
            known_hosts=str(sshd.known_hosts),
            server=sshd,
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """With ``-v`` or more: how long the real servers took to start."""
    if terminalreporter.config.get_verbosity() < 1 or not STARTUP_TIMES:
        return
    terminalreporter.section("real servers: start-up times")
    for kind, times in sorted(STARTUP_TIMES.items()):
        mean = sum(times) / len(times)
        terminalreporter.write_line(
            f"{kind:20} {len(times):3} started, mean {mean:.3f} s, max {max(times):.3f} s"
        )
