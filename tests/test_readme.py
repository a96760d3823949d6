"""Every ``python`` example of README.md runs, and prints what its comments say.

Complete programs run as they are. Fragments (they use names defined elsewhere or
``await`` at the top level) run inside a small program: the definitions they need
are prepended, the fragment becomes the body of an ``async def`` run on a node,
and a few lines after it print what it produced. Each runs in a fresh interpreter,
from the repository root.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT = 60.0

BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")
PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s*#\s*([^:\s]+)", re.MULTILINE)


def python_blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def first_line(block: str) -> str:
    return next(line for line in block.splitlines() if line.strip()).strip()


def commented_outputs(block: str) -> list[str]:
    """What the ``print(...)  # 8: ...`` lines of a block say they print."""
    return PRINT_COMMENT.findall(block)


def as_coroutine(name: str, parameters: str, block: str, epilogue: str) -> str:
    """``async def name(parameters):`` with the fragment and the epilogue as its body."""
    body = textwrap.indent(block + textwrap.dedent(epilogue), "    ")
    return f"async def {name}({parameters}) -> None:\n{body}\n"


@dataclass
class Fragment:
    """How to complete the README block that contains ``marker``."""

    marker: str
    build: Callable[[str], str]  # the README block -> the program to run
    expected: list[str] = field(default_factory=list)


MESSAGES_PRELUDE = """
import asyncio

import msgspec

from aria_actors import Actor, Node, handles


class Inc(msgspec.Struct, frozen=True, tag=True):
    n: int = 1


class Get(msgspec.Struct, frozen=True, tag=True):
    pass


class Counter(Actor):
    async def init(self) -> None:
        self.value = 0

    @handles(Inc)
    def inc(self, msg: Inc) -> int:
        self.value += msg.n
        if self.value == 2:
            self.stop()  # after the fragment's two casts, so that ``ref.wait()`` returns
        return self.value

    @handles(Get)
    def get(self, msg: Get) -> int:
        return self.value
"""

MESSAGES_MAIN = """
async def main() -> None:
    async with Node(name="readme") as node:
        ref = await node.spawn(Counter)
        await asyncio.wait_for(fragment(ref), 10)


asyncio.run(main())
"""

SUPERVISOR_PRELUDE = """
import asyncio

from aria_actors import Actor, Node


class Store(Actor):
    async def init(self, root: str) -> None:
        self.root = root
"""

SUPERVISOR_CHECK = """
children = await sup.which_children()
print([(child.id, child.type) for child in children])
store = node.whereis("store")
print(node.whereis("storage_sup") == sup, store is not None and store.is_alive())
"""

SUPERVISOR_MAIN = """
async def main() -> None:
    async with Node(name="readme") as node:
        await asyncio.wait_for(fragment(node), 10)


asyncio.run(main())
"""


AUTH_PRELUDE = """
import asyncio
import tempfile
from pathlib import Path

import msgspec

from aria_actors import Actor, Node, NodeConfig, handles, load_services
from aria_actors.services.auth.client import Auth

CHEAP = {"argon2_time_cost": 1, "argon2_memory_cost": 1024, "argon2_parallelism": 1}


async def auth_node(work) -> None:
    config = NodeConfig(services={"aria_auth": CHEAP})
    async with Node(name="readme", config=config, state_dir=Path(tempfile.mkdtemp())) as node:
        await node.boot(load_services(Path("supervisors")), only=["aria_auth"])
        await asyncio.wait_for(work(node), 30)
"""

GUARD_MAIN = """
async def use(node: Node) -> None:
    auth = Auth(node)
    await auth.put_role("reader", ["storage:read"])
    await auth.create_user("bob", "correct horse battery staple")
    await auth.assign_role("bob", "reader")
    pair = await auth.login("bob", "correct horse battery staple")
    chunks = await node.spawn(Chunks)
    print(await chunks.call(ReadChunk("/chars/hero/index.caibx", token=pair.access)))


asyncio.run(auth_node(use))
"""


def fragments() -> list[Fragment]:
    quick_start = next(block for block in python_blocks() if "asyncio.run(main())" in block)
    return [
        Fragment(
            marker="ref.cast_nowait(",
            build=lambda block: (
                MESSAGES_PRELUDE
                + "\n\n"
                + as_coroutine("fragment", "ref", block, "print(reply, reason.kind)\n")
                + MESSAGES_MAIN
            ),
            # the call ran first (0), the two casts stopped the actor normally
            expected=["0 normal"],
        ),
        Fragment(
            marker="node.start_supervisor(",
            build=lambda block: (
                SUPERVISOR_PRELUDE
                + "\n\n"
                + as_coroutine("fragment", "node", block, SUPERVISOR_CHECK)
                + SUPERVISOR_MAIN
            ),
            expected=["[('store', 'worker'), ('workers', 'supervisor')]", "True True"],
        ),
        Fragment(
            marker="auth = Auth(node)",
            build=lambda block: (
                AUTH_PRELUDE
                + "\n\n"
                + as_coroutine("fragment", "node", block, "")
                + "\n\nasyncio.run(auth_node(fragment))\n"
            ),
            expected=["alice ['chars:read', 'chars:write']"],
        ),
        Fragment(
            marker="@authorized(",
            build=lambda block: AUTH_PRELUDE + "\n\n" + block + "\n\n" + GUARD_MAIN,
            expected=["bob may read /chars/hero/index.caibx"],
        ),
        Fragment(
            marker="NodeThread(",
            # Counter and Inc are the quick start's: run it first, then the embedding example.
            build=lambda block: quick_start + "\n\n" + block,
            expected=[*commented_outputs(quick_start), "8"],
        ),
    ]


def program_for(block: str) -> tuple[str, list[str]]:
    """The program to run for a README block, and the lines it must print."""
    matching = [fragment for fragment in fragments() if fragment.marker in block]
    assert len(matching) <= 1, f"README block matches several fragment markers: {block}"
    if not matching:
        return block, commented_outputs(block)
    return matching[0].build(block), matching[0].expected


def run(program: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def printed(stdout: str) -> list[str]:
    """The program's own output: stdout without the node's log lines."""
    return [line for line in stdout.splitlines() if line.strip() and not LOG_LINE.match(line)]


# ======================================================================================
# The tests
# ======================================================================================


def test_the_readme_has_python_examples() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 1
    assert "asyncio.run(main())" in blocks[0]
    assert commented_outputs(blocks[0]) == ["8"]


def test_every_fragment_helper_matches_exactly_one_block() -> None:
    """When the README changes, this says which fragment helper is out of date."""
    blocks = python_blocks()
    for fragment in fragments():
        assert sum(fragment.marker in block for block in blocks) == 1, fragment.marker


@pytest.mark.parametrize("block", python_blocks(), ids=first_line)
def test_the_readme_example_runs(block: str) -> None:
    program, expected = program_for(block)
    result = run(program)
    assert result.returncode == 0, (
        f"README example failed (status {result.returncode}):\n{block}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr, result.stderr
    if expected:
        assert printed(result.stdout) == expected, result.stdout


def test_a_broken_example_would_fail() -> None:
    """The harness is not blind: an example that raises or prints otherwise is caught."""
    result = run("raise SystemExit('broken')")
    assert result.returncode != 0
    program, _ = program_for(
        "import asyncio\nprint(1 + 1)  # 3: wrong on purpose\nasyncio.run(asyncio.sleep(0))\n"
    )
    assert printed(run(program).stdout) != commented_outputs(program)
