"""A real S3 API for the tests: moto's ``moto_server`` (``moto[server]`` of the dev extra).

It listens on 127.0.0.1 on a free port, without TLS, keeps everything in memory and
accepts any credentials (the tests still sign their requests: ``ACCESS_KEY`` and
``SECRET_KEY``). ``create_bucket()`` makes a bucket of the test's own;
``delete_bucket()`` empties and removes it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ._util import (
    LOOPBACK,
    ChildServer,
    ComponentMissing,
    ServerFailed,
    clean_env,
    free_port,
    short_tempdir,
    tail,
    wait_for,
)

INSTALL_HINT = "pip install -e '.[dev]' (moto[server] brings moto_server), or make setup"

ACCESS_KEY = "aria-test-access"
SECRET_KEY = "aria-test-secret"
REGION = "us-east-1"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_moto_server() -> str:
    """``moto_server`` next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "moto_server"
    if os.access(beside, os.X_OK):
        return str(beside)
    if found := shutil.which("moto_server"):
        return found
    raise ComponentMissing("moto_server (moto[server])", INSTALL_HINT)


class MotoServer(ChildServer):
    """``moto_server`` on a free loopback port; ``start()``, ``stop()``, ``destroy()``."""

    def __init__(self, start_timeout: float = 60.0) -> None:
        self.binary = find_moto_server()
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise ComponentMissing("boto3", INSTALL_HINT) from None
        self.start_timeout = start_timeout
        self._base = short_tempdir("aria-moto-")
        self._port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        """The S3 endpoint, ``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def log_file(self) -> Path:
        return self._base / "moto.log"

    def _answers(self) -> bool:
        try:
            with _NO_PROXY.open(f"{self.endpoint}/moto-api/", timeout=2.0) as reply:
                return bool(reply.status < 500)
        except urllib.error.HTTPError as err:
            return err.code < 500
        except (OSError, ValueError):
            return False

    def _dead(self) -> str | None:
        if self._proc is None or self._proc.poll() is None:
            return None
        return f"moto_server exited with status {self._proc.returncode}:\n{tail(self.log_file)}"

    def start(self) -> None:
        if self.is_running():
            return
        for attempt in range(3):
            self._port = free_port()
            env = clean_env(("AWS_", "MOTO_", "S3_")) | {"HOME": str(self._base)}
            with self.log_file.open("ab") as log:
                self._proc = subprocess.Popen(
                    [self.binary, "-H", LOOPBACK, "-p", str(self._port)],
                    cwd=self._base,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                wait_for(
                    self._answers,
                    timeout=self.start_timeout,
                    what=f"moto_server on {self.endpoint}",
                    alive=self._dead,
                )
                return
            except ServerFailed:
                self.kill()
                if attempt < 2 and "in use" in tail(self.log_file):
                    continue
                raise

    # -- S3 -----------------------------------------------------------------------------------

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str | None = None) -> str:
        """A new empty bucket (a random name unless given)."""
        bucket = name or f"aria-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def delete_bucket(self, bucket: str) -> None:
        """Empty and remove a bucket; a server that is gone is not an error."""
        if not self.is_running():
            return
        client = self.client()
        with contextlib.suppress(Exception):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
                if keys:
                    client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            client.delete_bucket(Bucket=bucket)
