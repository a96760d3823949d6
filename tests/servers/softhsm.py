"""A SoftHSM2 token for the tests, in its own temp directory.

``SoftHsmToken`` writes a private ``softhsm2.conf`` (``SOFTHSM2_CONF``) whose token
directory is a temp dir, and initializes one token there with ``softhsm2-util``. SoftHSM
reads ``SOFTHSM2_CONF`` when the PKCS#11 module is initialized, so a process that loads
the module itself must have it in its environment first: pass ``token.env`` to a
subprocess, or, in the test process, set it and call ``token.open_lib()``, which
(re)initializes python-pkcs11's module so that it reads this token's configuration.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ._util import ComponentMissing, ServerFailed, short_tempdir

if TYPE_CHECKING:
    import pkcs11
    from pkcs11._pkcs11 import lib as Pkcs11Lib

INSTALL_HINT = "install SoftHSM2 (Debian: apt-get install -y softhsm2): make servers"


def find_module() -> str:
    """The SoftHSM2 PKCS#11 module (``libsofthsm2.so``) in the usual places.

    ``$ARIA_SOFTHSM2_MODULE`` wins; then Debian's and other distributions' paths.
    """
    if env := os.environ.get("ARIA_SOFTHSM2_MODULE"):
        if os.path.isfile(env):
            return env
        raise ComponentMissing(
            f"SoftHSM2 ($ARIA_SOFTHSM2_MODULE={env} does not exist)", INSTALL_HINT
        )
    candidates = [
        "/usr/lib/softhsm/libsofthsm2.so",
        *sorted(str(p) for p in Path("/usr/lib").glob("*/softhsm/libsofthsm2.so")),
        "/usr/lib64/softhsm/libsofthsm2.so",
        "/usr/lib64/pkcs11/libsofthsm2.so",
        "/usr/lib/pkcs11/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
        "/opt/homebrew/lib/softhsm/libsofthsm2.so",
        "/usr/local/opt/softhsm/lib/softhsm/libsofthsm2.so",
    ]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ComponentMissing("SoftHSM2's PKCS#11 module (libsofthsm2.so)", INSTALL_HINT)


def find_util() -> str:
    if found := shutil.which("softhsm2-util"):
        return found
    raise ComponentMissing("softhsm2-util", INSTALL_HINT)


class SoftHsmToken:
    """One initialized SoftHSM2 token in a temp token directory."""

    def __init__(self, label: str = "aria-test", pin: str = "1234", so_pin: str = "5678") -> None:
        self.module = find_module()
        self.util = find_util()
        self.label = label
        self.pin = pin
        self.so_pin = so_pin
        self._base = short_tempdir("aria-hsm-")
        self.token_dir = self._base / "tokens"
        self.conf = self._base / "softhsm2.conf"
        self._lib: Pkcs11Lib | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment a process needs to see this token (``SOFTHSM2_CONF``)."""
        return {"SOFTHSM2_CONF": str(self.conf)}

    def init(self) -> None:
        """Write the configuration and initialize the token (``--init-token --free``)."""
        self.token_dir.mkdir(exist_ok=True)
        self.conf.write_text(
            f"directories.tokendir = {self.token_dir}\n"
            "objectstore.backend = file\n"
            "log.level = ERROR\n"
            "slots.removable = false\n"
            "slots.mechanisms = ALL\n"
            "library.reset_on_fork = false\n"
        )
        self.add_token(self.label, self.pin, self.so_pin)

    def add_token(self, label: str, pin: str, so_pin: str) -> None:
        """Initialize another token (in the next free slot) in the same directory."""
        argv = [self.util, "--init-token", "--free", "--label", label]
        argv += ["--pin", pin, "--so-pin", so_pin]
        result = subprocess.run(
            argv,
            env=os.environ | self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise ServerFailed(f"softhsm2-util failed: {result.stdout}{result.stderr}")

    def open_lib(self) -> Pkcs11Lib:
        """python-pkcs11's handle on the module, (re)initialized with this token's conf.

        Sets ``SOFTHSM2_CONF`` in this process's environment (the fixture restores it).
        python-pkcs11 loads a module once per process, so it is reinitialized here to
        make SoftHSM read this token's configuration; sessions of an earlier token end.
        """
        try:
            import pkcs11
        except ImportError as exc:
            raise ComponentMissing("python-pkcs11", "pip install -e '.[dev]'") from exc
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        lib = pkcs11.lib(self.module)
        lib.reinitialize()
        self._lib = lib
        return lib

    def close_lib(self) -> None:
        """Finalize the module if open_lib() initialized it, ending its sessions.

        python-pkcs11 keeps the module loaded; finalized, the next ``pkcs11.lib()``
        initializes it again and so reads the ``SOFTHSM2_CONF`` of that moment.
        """
        if self._lib is not None and self._lib.initialized:
            self._lib.finalize()
        self._lib = None

    def token(self) -> pkcs11.Token:
        """This token, through python-pkcs11 (after ``open_lib()``)."""
        return self.open_lib().get_token(token_label=self.label)

    def destroy(self) -> None:
        """Finalize the module (when this token opened it) and delete the token's files."""
        try:
            self.close_lib()
        finally:
            shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> SoftHsmToken:
        self.init()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
