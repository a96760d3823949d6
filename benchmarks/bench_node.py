"""Node daemon benchmark: cold boot to READY, console attach to first answer, shutdown.

Run it with ``make bench-node`` (``.venv/bin/python benchmarks/bench_node.py``).
Every figure is measured on real processes, as an operator meets them:

- **cold boot to READY**: from ``Popen`` of ``aria-node`` to the ``READY=1``
  datagram it sends to a ``NOTIFY_SOCKET`` the benchmark binds (systemd's own
  readiness protocol). Two trees: the runtime alone (no services), and the 14
  services of the architecture with their real ``requires``, each a nested
  supervisor of ``--workers`` workers plus a dynamic pool. The floor beside it: an
  interpreter that only imports ``aria_actors`` (``python -c "import aria_actors"``).
- **console attach to first answer**: from ``Popen`` of ``aria-console -c tree`` to
  its exit with the tree printed (a whole console process), and, in process, from
  connecting to the socket to the reply of the first request (``ConsoleClient.attach``
  + ``tree``): the protocol's own cost.
- **shutdown**: from ``SIGTERM`` to the process's exit (status 0), with the 14
  services running: every actor stopped in reverse boot order.

Each figure is the median (and p90) of ``--repeats`` runs. Results are printed as a
table and written to ``benchmarks/results/node.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_actors import write_services  # noqa: E402

from aria_actors.console.client import ConsoleClient, locate  # noqa: E402
from aria_actors.console.protocol import Tree, TreeReply  # noqa: E402

NODE = [sys.executable, "-c", "from aria_actors.daemon import main; main()"]
CONSOLE = [sys.executable, "-c", "from aria_actors.console.main import main; main()"]
TIMEOUT = 60.0


class BenchmarkError(RuntimeError):
    """A run did not do what it should (no READY, a non-zero exit, no output)."""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_ms": statistics.median(values) * 1e3,
        "p90_ms": percentile(values, 0.9) * 1e3,
        "min_ms": min(values) * 1e3,
    }


class NodeProcess:
    """An ``aria-node`` with its own state, runtime and notify socket."""

    def __init__(self, supervisors: Path | None) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="aria-bench-", dir="/tmp"))
        self.state = self.base / "state"
        self.runtime = self.base / "run"
        self.notify_path = self.base / "notify"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.supervisors = supervisors
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the node; seconds from Popen to READY=1."""
        command = [*NODE, "--config", "test", "--state-dir", str(self.state)]
        command += ["--runtime-dir", str(self.runtime), "--log-level", "warning"]
        if self.supervisors is not None:
            command += ["--supervisors", str(self.supervisors)]
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify_path))
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.notify.settimeout(TIMEOUT)
        while True:
            try:
                datagram = self.notify.recv(4096).decode()
            except TimeoutError as exc:
                raise BenchmarkError("no READY=1 within the timeout") from exc
            if "READY=1" in datagram.split("\n"):
                return time.perf_counter() - started

    def stop(self) -> float:
        """SIGTERM; seconds to the process's exit (which must be 0)."""
        assert self.proc is not None
        # wait() without a timeout blocks in waitpid (with one, it polls with growing
        # sleeps, which would round the figure up); a timer kills a node that hangs.
        guard = threading.Timer(TIMEOUT, self.proc.kill)
        guard.start()
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait()
        elapsed = time.perf_counter() - started
        guard.cancel()
        if status != 0:
            error = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise BenchmarkError(f"aria-node exited {status}: {error}")
        return elapsed

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.notify.close()
        shutil.rmtree(self.base, ignore_errors=True)


def import_floor(repeats: int) -> list[float]:
    """Seconds for an interpreter that only imports aria_actors."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import aria_actors"], check=True, cwd=ROOT)
        times.append(time.perf_counter() - started)
    return times


async def attach_in_process(node: NodeProcess, repeats: int) -> list[float]:
    target = locate(state_dir=node.state)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        client = await ConsoleClient.attach(target)
        reply = await client.request(Tree())
        times.append(time.perf_counter() - started)
        await client.close()
        if not isinstance(reply, TreeReply):
            raise BenchmarkError(f"tree: {reply}")
    return times


def console_process(node: NodeProcess, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(
            [*CONSOLE, "--state-dir", str(node.state), "-c", "tree"],
            capture_output=True,
            timeout=TIMEOUT,
            cwd=ROOT,
            check=False,
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 0 or not done.stdout.strip():
            raise BenchmarkError(f"aria-console -c tree failed: {done.stderr.decode()}")
    return times


def run(repeats: int, workers: int) -> dict[str, Any]:
    results: dict[str, Any] = {"actors_per_service": workers + 3}
    print(f"  .. import floor x{repeats}", file=sys.stderr)
    results["import_floor"] = summary(import_floor(repeats))
    services = Path(tempfile.mkdtemp(prefix="aria-bench-sup-", dir="/tmp"))
    try:
        write_services(services, workers)
        return measure(results, services, repeats)
    finally:
        shutil.rmtree(services, ignore_errors=True)


def measure(results: dict[str, Any], services: Path, repeats: int) -> dict[str, Any]:
    for label, directory in (("runtime only", None), ("14 services", services)):
        boots, stops, consoles, attaches = [], [], [], []
        print(f"  .. {label}: boot/attach/stop x{repeats}", file=sys.stderr)
        for index in range(repeats):
            node = NodeProcess(directory)
            try:
                boots.append(node.start())
                if index == 0:
                    consoles = console_process(node, repeats)
                    attaches = asyncio.run(attach_in_process(node, repeats * 5))
                stops.append(node.stop())
            finally:
                node.close()
        results[label] = {
            "boot_to_ready": summary(boots),
            "shutdown": summary(stops),
            "console_process": summary(consoles),
            "attach_first_answer": summary(attaches),
        }
    return results


def table(results: dict[str, Any]) -> str:
    floor = results["import_floor"]["median_ms"]
    rows = [
        ["python -c 'import aria_actors' (floor)", f"{floor:.0f}", "", "", ""],
    ]
    for label in ("runtime only", "14 services"):
        r = results[label]
        rows += [
            [
                f"cold boot to READY=1, {label}",
                f"{r['boot_to_ready']['median_ms']:.0f}",
                f"{r['boot_to_ready']['p90_ms']:.0f}",
                f"{r['boot_to_ready']['median_ms'] / floor:.2f}x",
                "",
            ],
            [
                f"aria-console -c tree (process), {label}",
                f"{r['console_process']['median_ms']:.0f}",
                f"{r['console_process']['p90_ms']:.0f}",
                f"{r['console_process']['median_ms'] / floor:.2f}x",
                "",
            ],
            [
                f"attach + first answer (in process), {label}",
                f"{r['attach_first_answer']['median_ms']:.2f}",
                f"{r['attach_first_answer']['p90_ms']:.2f}",
                "",
                "",
            ],
            [
                f"SIGTERM to exit 0, {label}",
                f"{r['shutdown']['median_ms']:.0f}",
                f"{r['shutdown']['p90_ms']:.0f}",
                "",
                "",
            ],
        ]
    header = ["measurement", "median ms", "p90 ms", "vs import floor", ""]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Node daemon benchmark")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--workers", type=int, default=20, help="workers per service")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "node.json")
    args = parser.parse_args()
    print(f"python  : {sys.version.split()[0]}; {os.cpu_count()} cores")
    results = run(args.repeats, args.workers)
    print()
    print(
        f"{args.workers + 3} actors per service (a nested supervisor, {args.workers} "
        "workers, a dynamic pool) in the 14-service tree"
    )
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"json    : {args.json}")


if __name__ == "__main__":
    main()
