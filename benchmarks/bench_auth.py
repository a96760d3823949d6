"""aria_auth benchmark: minting and verifying a token with 5 caveats, against bare
pymacaroons in the same run (target: overhead under 1.3x), and the service paths.

Run it with ``make bench-auth`` (``.venv/bin/python benchmarks/bench_auth.py``).

- **mint**: bare pymacaroons (``Macaroon(version=2)``, five
  ``add_first_party_caveat``, ``serialize()``) against ``macaroons.mint`` with
  aria's five caveats written from their parts (language, user, permissions,
  service, time-before) and a fresh identifier.
- **verify**: bare pymacaroons (``Macaroon.deserialize``, a ``Verifier`` with four
  exact predicates and a general one for the time, ``verify``) against aria's
  strict decoder and hardened verifier (``codec.decode`` + ``macaroons.verify``
  for a request), on the same token.
- **service paths** (for scale, no peer): ``Auth.verify`` on a node (the shared
  verifier, cached state), a verification through the actor (``VerifyToken``), and
  logins (argon2id at the defaults: RFC 9106's low-memory profile).

Each figure is the best of ``--repeats`` runs; results go to
``benchmarks/results/auth.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymacaroons
import structlog
from pymacaroons import Verifier

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from aria_actors import Node, NodeConfig, RuntimeConfig, load_services  # noqa: E402
from aria_actors.services.auth import caveats as cv  # noqa: E402
from aria_actors.services.auth import codec, macaroons  # noqa: E402
from aria_actors.services.auth.client import AUTH_ACTOR, Auth  # noqa: E402
from aria_actors.services.auth.messages import VerifyToken  # noqa: E402
from aria_actors.services.auth.tokens import identifier, new_id  # noqa: E402

KEY = os.urandom(32)
LOCATION = "aria"
PERMISSIONS = frozenset({"chars:read", "chars:write", "storage:read"})


def best_rate(repeats: int, n: int, call: Callable[[], Any]) -> float:
    for _ in range(max(1, n // 10)):
        call()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(n):
            call()
        rates.append(n / (time.perf_counter() - started))
    return max(rates)


def core(n: int, repeats: int) -> dict[str, float]:
    expires = time.time() + 3600
    texts = [
        cv.LANGUAGE,
        cv.user("alice"),
        cv.permissions(PERMISSIONS),
        cv.service("aria_storage"),
        cv.time_before(expires),
    ]
    ident = identifier(new_id())

    def bare_mint() -> str:
        macaroon = pymacaroons.Macaroon(
            location=LOCATION, identifier=ident, key=KEY, version=pymacaroons.MACAROON_V2
        )
        for text in texts:
            macaroon.add_first_party_caveat(text)
        return str(macaroon.serialize())

    def aria_mint() -> str:
        return macaroons.mint(
            KEY,
            identifier(new_id()),
            [
                cv.LANGUAGE,
                cv.user("alice"),
                cv.permissions(PERMISSIONS),
                cv.service("aria_storage"),
                cv.time_before(expires),
            ],
            LOCATION,
        )

    token = bare_mint()
    assert codec.decode(token) == codec.decode(macaroons.mint(KEY, ident, texts, LOCATION))

    def bare_verify() -> bool:
        macaroon = pymacaroons.Macaroon.deserialize(token)
        verifier = Verifier()
        for text in texts[:4]:
            verifier.satisfy_exact(text)
        verifier.satisfy_general(lambda p: p.startswith("time-before = ") and p[14:] > "2000")
        return bool(verifier.verify(macaroon, KEY))

    request = cv.Request(service="aria_storage", permissions=frozenset({"chars:read"}))

    def aria_verify() -> object:
        return macaroons.verify(codec.decode(token), KEY, (), request, "alice")

    results: dict[str, float] = {}
    for name, call in (
        ("mint, bare pymacaroons", bare_mint),
        ("mint, aria", aria_mint),
        ("verify, bare pymacaroons", bare_verify),
        ("verify, aria", aria_verify),
    ):
        results[name] = best_rate(repeats, n, call)
    return results


async def service(n: int, logins: int, repeats: int) -> dict[str, float]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    state = Path(tempfile.mkdtemp(prefix="aria-bench-auth-"))
    config = NodeConfig(runtime=RuntimeConfig(loop_lag_interval=0, shutdown=5.0))
    results: dict[str, float] = {}
    async with Node(name="bench", config=config, state_dir=state) as node:
        await node.boot(load_services(ROOT / "supervisors"), only=["aria_auth"])
        auth = Auth(node)
        await auth.put_role("reader", sorted(PERMISSIONS))
        await auth.create_user("alice", "correct horse battery staple")
        await auth.assign_role("alice", "reader")
        pair = await auth.login("alice", "correct horse battery staple")

        async def timed(count: int, call: Callable[[], Any]) -> float:
            best = 0.0
            for _ in range(repeats):
                started = time.perf_counter()
                for _ in range(count):
                    await call()
                best = max(best, count / (time.perf_counter() - started))
            return best

        await auth.verify(pair.access, permissions={"chars:read"})
        results["Auth.verify on a node (cached state)"] = await timed(
            n, lambda: auth.verify(pair.access, permissions={"chars:read"})
        )
        ref = node.whereis(AUTH_ACTOR)
        assert ref is not None
        message = VerifyToken(pair.access, permissions=["chars:read"])
        results["verify through the actor (VerifyToken)"] = await timed(
            n // 4, lambda: ref.call(message)
        )
        results["login (argon2id, RFC 9106 low-memory)"] = await timed(
            logins, lambda: auth.login("alice", "correct horse battery staple")
        )
        results["refresh (new pair, one DB transaction)"] = await _refreshes(auth, logins * 4)
    return results


async def _refreshes(auth: Auth, count: int) -> float:
    pair = await auth.login("alice", "correct horse battery staple")
    started = time.perf_counter()
    for _ in range(count):
        pair = await auth.refresh(pair.refresh)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description="aria_auth benchmark")
    parser.add_argument("--tokens", type=int, default=20000)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "auth.json")
    args = parser.parse_args()
    print(f"python  : {sys.version.split()[0]}; {os.cpu_count()} cores", flush=True)
    tokens = core(args.tokens, args.repeats)
    paths = asyncio.run(service(args.tokens // 4, args.logins, max(1, args.repeats // 2)))
    print("\n| 5 caveats | ops/s | aria vs bare pymacaroons (time) |\n|---|---:|---:|")
    for name, value in tokens.items():
        kind = name.split(",")[0]
        bare = tokens[f"{kind}, bare pymacaroons"]
        ratio = f"{bare / value:.2f}x" if "aria" in name else ""
        print(f"| {name} | {value:,.0f} | {ratio} |")
    print("\n| service path | ops/s |\n|---|---:|")
    for name, value in paths.items():
        print(f"| {name} | {value:,.0f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"tokens": tokens, "service": paths}, indent=2) + "\n")
    print(f"\njson    : {args.json}")


if __name__ == "__main__":
    main()
