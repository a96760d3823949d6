"""Hatch build hook: compiles aria_storage's C chunker (``_chunker.c``).

Runs for the wheel target, with the C compiler Python was built with (``CC``, or ``cc``)
and the interpreter's headers and extension suffix from ``sysconfig``:

* a regular wheel gets the compiled module (``_chunker<EXT_SUFFIX>``) and a platform tag;
* an editable install (``pip install -e .``) compiles it into the source tree, next to
  ``_chunker.c`` (git ignores it), where the editable import finds it.

A compiler failure fails the build with the compiler's output: the package does not work
without the module. ``CFLAGS`` from the environment are appended to the flags.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "aria_actors/services/storage/_chunker.c"
MODULE = "aria_actors/services/storage/_chunker"

# -ffp-contract=off: the discriminator formula must round like casync's (no fused
# multiply-add), whatever the compiler's default.
FLAGS = ["-O3", "-fPIC", "-ffp-contract=off", "-fno-strict-aliasing", "-Wall", "-shared"]


def compiler() -> list[str]:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def compile_chunker(source: Path, target: Path) -> None:
    """Compile ``source`` into the extension module ``target`` (replaced atomically)."""
    include = sysconfig.get_paths()["include"]
    link = ["-undefined", "dynamic_lookup"] if sys.platform == "darwin" else []
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".chunker-", suffix=".so", dir=target.parent)
    os.close(fd)
    command = [
        *compiler(),
        *FLAGS,
        f"-I{include}",
        str(source),
        "-o",
        tmp,
        *link,
        *shlex.split(os.environ.get("CFLAGS", "")),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"compiling {source} failed ({shlex.join(command)}):\n{done.stdout}{done.stderr}"
            )
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class ChunkerBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        name = MODULE + sysconfig.get_config_var("EXT_SUFFIX")
        if version == "editable":
            compile_chunker(root / SOURCE, root / name)
        else:
            self._tmpdir = tempfile.mkdtemp(prefix="aria-chunker-")
            built = Path(self._tmpdir) / Path(name).name
            compile_chunker(root / SOURCE, built)
            build_data["force_include"][str(built)] = name
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tmpdir = getattr(self, "_tmpdir", None)
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
