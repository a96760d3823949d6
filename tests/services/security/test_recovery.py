"""aria_security on a real OpenBao server that stops, starts, seals and unseals.

The service must never serve a stale value while OpenBao is away (every request fails
with SecretsUnavailable or SecretsSealed), must say so (``secrets_degraded``, the
``aria_security_backend_up`` gauge), and must come back by itself, without a restart
of anything, once the server answers again, with everything committed before still
there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aria_actors.services.security.api import SecretsSealed, SecretsUnavailable
from aria_actors.services.security.client import Secrets
from tests.servers.openbao import OpenBaoServer

from .support import (
    ONE_LOOP,
    SECRETS_NAME,
    backend_up,
    boot_security,
    events,
    eventually,
    security_node,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def bao(openbao_persistent: OpenBaoServer) -> OpenBaoServer:
    """A persistent server of this test's own, with KV v2 at ``secret/`` and transit."""
    openbao_persistent.enable_kv_v2("secret")
    openbao_persistent.enable_transit()
    return openbao_persistent


def openbao_settings(bao: OpenBaoServer, directory: Path) -> dict[str, Any]:
    token_file = directory / "bao-token"
    token_file.write_text(bao.root_token + "\n")
    token_file.chmod(0o600)
    return {
        "backend": "openbao",
        "openbao": {"address": bao.address, "token_file": str(token_file), "timeout": 2.0},
        "health_interval": 0.2,
        "max_backoff": 1.0,
    }


async def test_the_service_rides_out_a_server_stop_and_start(
    bao: OpenBaoServer, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    async with security_node(tmp_path / "state", openbao_settings(bao, tmp_path)) as node:
        await boot_security(node)
        secrets = Secrets(node, caller="recovery_test")
        written = {f"app/s{n:02}": {"n": str(n), "password": f"pw-{n}"} for n in range(20)}
        for path, data in written.items():
            await secrets.put(path, data)
        assert await secrets.put("app/s00", {"n": "0", "password": "second"}) == 2
        key, wrapped = await secrets.new_data_key()
        assert (await secrets.health()).ok
        assert backend_up(node) == 1
        actor = node.whereis(SECRETS_NAME)

        bao.stop()
        for path in written:  # nothing stale: every read fails while it is away
            with pytest.raises(SecretsUnavailable):
                await secrets.get(path)
        with pytest.raises(SecretsUnavailable):
            await secrets.put("app/new", {"v": "1"})
        with pytest.raises(SecretsUnavailable):
            await secrets.list("app")
        with pytest.raises(SecretsUnavailable):
            await secrets.info("app/s01")
        with pytest.raises(SecretsUnavailable):
            await secrets.unwrap_data_key(wrapped)
        assert events(logs, "secrets_degraded")
        assert backend_up(node) == 0
        health = await secrets.health()
        assert not health.ok
        assert health.detail.startswith("degraded:")

        bao.start()  # and unseal: nothing on the Aria side is restarted
        await eventually(lambda: backend_up(node) == 1, what="backend_up back to 1")
        await eventually(lambda: bool(events(logs, "secrets_recovered")))
        assert node.whereis(SECRETS_NAME) == actor
        assert (await secrets.health()).ok
        for path, data in written.items():
            expected = {"n": "0", "password": "second"} if path == "app/s00" else data
            assert (await secrets.get(path)).data == expected
        assert (await secrets.get("app/s00", version=1)).data == written["app/s00"]
        assert await secrets.list("app") == sorted(written)
        assert await secrets.unwrap_data_key(wrapped) == key  # the transit key is kept too
        assert await secrets.put("app/new", {"v": "1"}) == 1  # the refused put never landed
        assert len(events(logs, "secrets_degraded")) == 1

        bao.kill()  # a second outage, a crash this time: raft keeps what was committed
        with pytest.raises(SecretsUnavailable):
            await secrets.get("app/new")
        await eventually(lambda: backend_up(node) == 0)
        bao.start()
        await eventually(lambda: backend_up(node) == 1, what="backend_up back to 1")
        assert (await secrets.get("app/new")).data == {"v": "1"}
        assert (await secrets.get("app/s19")).data == written["app/s19"]
        assert len(events(logs, "secrets_degraded")) == 2  # each transition logged once
        assert len(events(logs, "secrets_recovered")) == 2


@ONE_LOOP  # the stop/start test above runs on both loops
async def test_unreachable_at_boot_then_sealed(
    bao: OpenBaoServer, tmp_path: Path, logs: list[dict[str, Any]]
) -> None:
    settings = openbao_settings(bao, tmp_path)
    bao.stop()
    async with security_node(tmp_path / "state", settings) as node:
        assert await boot_security(node) == ["aria_security"]  # starts, degraded
        secrets = Secrets(node, caller="recovery_test")
        with pytest.raises(SecretsUnavailable):
            await secrets.get("boot/x")
        await eventually(lambda: backend_up(node) == 0)
        assert events(logs, "secrets_degraded")
        assert not (await secrets.health()).ok

        bao.start()
        await eventually(lambda: backend_up(node) == 1, what="backend_up back to 1")
        assert events(logs, "secrets_recovered")
        assert await secrets.put("boot/x", {"v": "1"}) == 1

        bao.seal()
        with pytest.raises(SecretsSealed, match="sealed"):
            await secrets.get("boot/x")
        with pytest.raises(SecretsSealed):
            await secrets.put("boot/x", {"v": "2"})
        health = await secrets.health()
        assert not health.ok
        assert "sealed" in health.detail
        assert backend_up(node) == 0

        bao.unseal()
        await eventually(lambda: backend_up(node) == 1, what="backend_up back to 1")
        assert (await secrets.get("boot/x")).data == {"v": "1"}
        assert (await secrets.info("boot/x")).current_version == 1
