"""Real servers for the integration tests, started by the tests themselves.

- ``PostgresCluster`` (postgres.py): an ephemeral PostgreSQL cluster (initdb/pg_ctl).
- ``OpenBaoServer`` (openbao.py): ``bao server``, in dev mode or persistent (raft storage).
- ``SoftHsmToken`` (softhsm.py): a SoftHSM2 token in a temp directory.

The pytest fixtures are in fixtures.py (loaded by the root conftest.py). In CI
(``CI=true``) a missing component fails the fixture; elsewhere it skips the test.
``make servers`` installs the system packages (SoftHSM2, PostgreSQL) when they are missing.
"""

from ._util import ComponentMissing, ServerFailed, free_port
from .openbao import AppRoleCredentials, OpenBaoServer
from .postgres import PostgresCluster
from .softhsm import SoftHsmToken

__all__ = [
    "AppRoleCredentials",
    "ComponentMissing",
    "OpenBaoServer",
    "PostgresCluster",
    "ServerFailed",
    "SoftHsmToken",
    "free_port",
]
