"""Real servers for the integration tests, started by the tests themselves.

- ``PostgresCluster`` (postgres.py): an ephemeral PostgreSQL cluster (initdb/pg_ctl).
- ``OpenBaoServer`` (openbao.py): ``bao server``, in dev mode or persistent (raft storage).
- ``SoftHsmToken`` (softhsm.py): a SoftHSM2 token in a temp directory.
- ``MotoServer`` (moto.py): moto's S3-compatible server (``moto_server``, from pip).
- ``SshServer`` (sshd.py): OpenSSH's sshd on loopback, for the SFTP store.

The pytest fixtures are in fixtures.py (loaded by the root conftest.py). In CI
(``CI=true``) a missing component fails the fixture; elsewhere it skips the test.
``make servers`` installs the system packages (SoftHSM2, PostgreSQL, casync, OpenSSH) when
they are missing.
"""

from ._util import ComponentMissing, ServerFailed, free_port
from .moto import MotoServer
from .openbao import AppRoleCredentials, OpenBaoServer
from .postgres import PostgresCluster
from .softhsm import SoftHsmToken
from .sshd import SshServer

__all__ = [
    "AppRoleCredentials",
    "ComponentMissing",
    "MotoServer",
    "OpenBaoServer",
    "PostgresCluster",
    "ServerFailed",
    "SoftHsmToken",
    "SshServer",
    "free_port",
]
