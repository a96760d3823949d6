"""A chunk store over HTTP(S), desync's protocol: ``<base>/<xxxx>/<id>.cacnk``.

==========  ==================================================================
request     answer
==========  ==================================================================
``GET``     200 and the stored bytes, or 404 when the chunk is not there
``HEAD``    200 or 404 (:meth:`HttpStore.has`)
``PUT``     200, 201 or 204 once stored (our chunk-server checks the chunk first)
``DELETE``  200, 202, 204 or 404 (desync's chunk-server has no ``DELETE``)
==========  ==================================================================

Listing is an extension of aria's chunk-server (:mod:`.server`): ``GET <base>_ids``
answers every id, one 64-hex line each. Other servers (desync's ``chunk-server``, a
plain web server) have no listing; :meth:`HttpStore.ids` then raises
:class:`StoreError` saying so.

The client is a :mod:`urllib3` connection pool: thread-safe, keep-alive, at most
``pool_size`` connections (more threads wait for a free one). Every request is
idempotent (a chunk's name is its content), so connection failures, timeouts, broken
responses and 5xx / 429 answers are retried ``retries`` times with exponential backoff;
any other answer is final. Every failure is a :class:`StoreError` naming the URL and
the status; a 401 or 403 says ``unauthorized`` / ``forbidden`` and hints at the token.
Environment proxies are not used.
"""

from __future__ import annotations

import math
import re
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any, Final, NoReturn

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from ..chunks import CHUNK_SIZE_LIMIT
from ..errors import ChunkMissing, StoreError, StoreReadOnly
from ..ids import ChunkId
from .base import Store

#: The largest stored chunk read from a server: the chunk limit plus zstd's worst case.
MAX_STORED_SIZE: Final = CHUNK_SIZE_LIMIT + (1 << 20)

#: Where aria's chunk-server answers the list of ids, relative to the store's base.
LIST_NAME: Final = "_ids"

USER_AGENT: Final = "aria-storage/1"

_RETRY_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_BACKOFF_CAP: Final = 10.0
_ERROR_TEXT: Final = 4096
_LINE: Final = re.compile(rb"[0-9a-f]{64}")


def _excerpt(body: bytes) -> str:
    """The start of an error body, printable, on one line."""
    text = body[:200].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return f": {text}" if text else ""


def _said(body: bytes) -> str:
    """What the server said about a refusal, in parentheses."""
    text = _excerpt(body)[2:]
    return f" (the server says: {text})" if text else ""


class HttpStore(Store):
    """desync's HTTP chunk store (a client of :mod:`.server`'s chunk-server and of desync's).

    ``url`` is the store's base (``http://host:port/store/``; a trailing ``/`` is
    added). ``token`` is sent as ``Authorization: Bearer <token>``. ``timeout`` bounds
    connecting and each wait for data (not a whole transfer); ``retries`` is how many
    times a failed request is tried again, ``backoff`` the first pause (doubled each
    time). HTTPS certificates are verified unless ``verify=False``; ``ca_certs`` names a
    PEM bundle to trust instead of the system's. ``max_size`` caps a chunk read.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        writable: bool = True,
        verify: bool = True,
        ca_certs: str | None = None,
        pool_size: int = 16,
        max_size: int = MAX_STORED_SIZE,
    ) -> None:
        self.location = url
        self.writable = writable
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_size = max_size
        self.timeout = timeout
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise StoreError(
                f"HTTP store {url!r}: the scheme must be http or https, not {parts.scheme!r}",
                store=url,
            )
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise StoreError(f"HTTP store {url!r}: {exc}", store=url) from None
        if not host:
            raise StoreError(f"HTTP store {url!r}: no host", store=url)
        if parts.username is not None or parts.password is not None:
            raise StoreError(
                f"HTTP store {url!r}: credentials in the URL are not supported; pass token=",
                store=url,
            )
        if parts.query or parts.fragment:
            raise StoreError(f"HTTP store {url!r}: no query or fragment expected", store=url)
        path = parts.path or "/"
        if not path.endswith("/"):
            path += "/"
        self.base_path = path
        netloc = f"[{host}]" if ":" in host else host
        if port is not None:
            netloc += f":{port}"
        self.base_url = f"{scheme}://{netloc}{path}"
        self.location = self.base_url
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._token = bool(token)
        self._pool_timeout = max(1, math.ceil(timeout))
        pool_timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._pool: urllib3.HTTPConnectionPool
        common: dict[str, Any] = {
            "timeout": pool_timeout,
            "maxsize": pool_size,
            "block": True,
            "headers": headers,
            "retries": False,
        }
        if scheme == "https":
            self._pool = urllib3.HTTPSConnectionPool(
                host,
                port,
                cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
                ca_certs=ca_certs,
                assert_hostname=None if verify else False,
                **common,
            )
        else:
            self._pool = urllib3.HTTPConnectionPool(host, port, **common)

    # -- plumbing --------------------------------------------------------------------------

    def _path(self, chunk_id: ChunkId) -> str:
        h = chunk_id.hex()
        return f"{self.base_path}{h[:4]}/{h}.cacnk"

    def _url(self, path: str) -> str:
        return self.base_url + path[len(self.base_path) :]

    def _pause(self, attempt: int) -> None:
        time.sleep(min(_BACKOFF_CAP, self.backoff * 2**attempt))

    def _read(self, resp: urllib3.BaseHTTPResponse, cap: int, url: str) -> bytes:
        """The whole body of ``resp``, refused past ``cap`` bytes."""
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise _TooBig(f"{url}: the answer has {length} bytes, over the {cap}-byte limit")
        parts: list[bytes] = []
        total = 0
        for part in resp.stream(1 << 20, decode_content=False):
            total += len(part)
            if total > cap:
                raise _TooBig(f"{url}: the answer is over the {cap}-byte limit")
            parts.append(part)
        return b"".join(parts)

    def _exchange(
        self, method: str, path: str, body: bytes | None = None, cap: int = _ERROR_TEXT
    ) -> tuple[int, bytes]:
        """One request, retried on failures that may pass: (status, body).

        Error answers' bodies are read up to a few KiB; ``cap`` bounds a 2xx body.
        """
        url = self._url(path)
        attempt = 0
        while True:
            problem: str
            resp: urllib3.BaseHTTPResponse | None = None
            try:
                resp = self._pool.urlopen(
                    method,
                    path,
                    body=body,
                    retries=False,
                    redirect=False,
                    preload_content=False,
                    decode_content=False,
                    release_conn=False,
                    pool_timeout=self._pool_timeout,
                )
                status = resp.status
                if method == "HEAD":
                    data = b""
                elif 200 <= status < 300:
                    data = self._read(resp, cap, url)
                else:
                    data = _read_error(resp)
                if status not in _RETRY_STATUS:
                    return status, data
                problem = f"HTTP {status}{_excerpt(data)}"
            except _TooBig as exc:
                if resp is not None:
                    resp.close()
                raise StoreError(
                    f"store {self.location}: {method} {exc}", store=self.location
                ) from None
            except (Urllib3Error, OSError) as exc:
                if resp is not None:
                    resp.close()
                problem = _describe(exc)
            finally:
                if resp is not None:
                    resp.release_conn()
            if attempt >= self.retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise StoreError(
                    f"store {self.location}: {method} {url}: {problem}{tries}",
                    store=self.location,
                )
            self._pause(attempt)
            attempt += 1

    def _error(self, method: str, path: str, status: int, body: bytes) -> StoreError:
        url = self._url(path)
        if status == 401:
            hint = (
                "the server did not accept the token (expired or revoked?)"
                if self._token
                else "the server wants a token (pass token=)"
            )
            what = f"unauthorized (HTTP 401): {hint}{_said(body)}"
        elif status == 403:
            hint = (
                "the token does not grant this"
                if self._token
                else "no token was given (pass token=)"
            )
            what = f"forbidden (HTTP 403): {hint}{_said(body)}"
        else:
            what = f"HTTP {status}{_excerpt(body)}"
        return StoreError(f"store {self.location}: {method} {url}: {what}", store=self.location)

    # -- the store -------------------------------------------------------------------------

    def get(self, chunk_id: ChunkId) -> bytes:
        path = self._path(chunk_id)
        status, body = self._exchange("GET", path, cap=self.max_size)
        if status == 200:
            return body
        if status == 404:
            raise ChunkMissing(
                f"chunk {chunk_id} is not in store {self.location}", chunk_id=str(chunk_id)
            )
        raise self._error("GET", path, status, body)

    def has(self, chunk_id: ChunkId) -> bool:
        path = self._path(chunk_id)
        status, body = self._exchange("HEAD", path)
        if status == 200:
            return True
        if status == 404:
            return False
        raise self._error("HEAD", path, status, body)

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        self._refuse_write()
        path = self._path(chunk_id)
        status, body = self._exchange("PUT", path, body=blob)
        if status in (200, 201, 204):
            return
        if status == 405:
            raise StoreReadOnly(
                f"store {self.location}: PUT {self._url(path)}: the server does not take "
                f"chunks (HTTP 405){_excerpt(body)}",
                store=self.location,
            )
        if status == 413:
            raise StoreError(
                f"store {self.location}: PUT {self._url(path)}: the server refuses a "
                f"{len(blob)}-byte chunk as too large (HTTP 413)",
                store=self.location,
            )
        raise self._error("PUT", path, status, body)

    def remove(self, chunk_id: ChunkId) -> None:
        self._refuse_write()
        path = self._path(chunk_id)
        status, body = self._exchange("DELETE", path)
        if status in (200, 202, 204, 404):
            return
        if status == 405:
            raise StoreError(
                f"store {self.location}: DELETE {self._url(path)}: the server does not "
                f"remove chunks (HTTP 405){_excerpt(body)}",
                store=self.location,
            )
        raise self._error("DELETE", path, status, body)

    def ids(self) -> Iterator[ChunkId]:
        """Every id, from aria's chunk-server's listing (``GET <base>_ids``).

        Raises :class:`StoreError` when the server has no listing (desync's, a plain
        web server), or the listing breaks off.
        """
        path = self.base_path + LIST_NAME
        url = self._url(path)
        attempt = 0
        while True:
            try:
                resp = self._pool.urlopen(
                    "GET",
                    path,
                    retries=False,
                    redirect=False,
                    preload_content=False,
                    decode_content=False,
                    release_conn=False,
                    pool_timeout=self._pool_timeout,
                )
            except (Urllib3Error, OSError) as exc:
                if attempt >= self.retries:
                    raise StoreError(
                        f"store {self.location}: GET {url}: {_describe(exc)}",
                        store=self.location,
                    ) from None
                self._pause(attempt)
                attempt += 1
                continue
            if resp.status in _RETRY_STATUS and attempt < self.retries:
                resp.close()
                resp.release_conn()
                self._pause(attempt)
                attempt += 1
                continue
            break
        complete = False
        try:
            if resp.status != 200:
                body = _read_error(resp)
                if resp.status in (400, 404, 405, 501):
                    raise StoreError(
                        f"store {self.location}: the server cannot list its chunks "
                        f"(GET {url}: HTTP {resp.status}); listing over HTTP is an "
                        "extension of aria's chunk-server",
                        store=self.location,
                    )
                raise self._error("GET", path, resp.status, body)
            yield from self._lines(resp, url)
            complete = True
        except (Urllib3Error, OSError) as exc:
            resp.close()
            raise StoreError(
                f"store {self.location}: GET {url}: the listing broke off: {_describe(exc)}",
                store=self.location,
            ) from None
        finally:
            if not complete:
                resp.close()  # an error, or the consumer stopped early: drop the connection
            resp.release_conn()

    def _lines(self, resp: urllib3.BaseHTTPResponse, url: str) -> Iterator[ChunkId]:
        rest = b""
        for part in resp.stream(1 << 16, decode_content=False):
            rest += part
            lines = rest.split(b"\n")
            rest = lines.pop()
            for line in lines:
                yield self._parse_line(line, url)
            if len(rest) > 256:
                self._garbage(url, rest)
        if rest:
            self._garbage(url, rest)

    def _parse_line(self, line: bytes, url: str) -> ChunkId:
        if not _LINE.fullmatch(line):
            self._garbage(url, line)
        return ChunkId(bytes.fromhex(line.decode("ascii")))

    def _garbage(self, url: str, line: bytes) -> NoReturn:
        raise StoreError(
            f"store {self.location}: GET {url}: not a chunk id in the listing: {line[:80]!r}",
            store=self.location,
        )

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"HttpStore({self.location!r})"


def _read_error(resp: urllib3.BaseHTTPResponse) -> bytes:
    """The start of an error answer's body; the connection is dropped if there is more."""
    data = resp.read(_ERROR_TEXT + 1, decode_content=False)
    if len(data) > _ERROR_TEXT:
        resp.close()  # not worth draining: the connection goes
    return data[:_ERROR_TEXT]


class _TooBig(Exception):
    """An answer over its size limit (never retried)."""


def _describe(exc: BaseException) -> str:
    """What went wrong on the wire, without urllib3's object reprs."""
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.NewConnectionError) or (
        isinstance(exc, urllib3.exceptions.MaxRetryError)
        and isinstance(reason, urllib3.exceptions.NewConnectionError)
    ):
        return f"cannot connect: {_strip(exc)}"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return "timed out connecting"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "timed out waiting for the server"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS error: {_strip(exc)}"
    if isinstance(exc, urllib3.exceptions.EmptyPoolError):
        return "no free connection in the pool before the timeout"
    if isinstance(exc, urllib3.exceptions.ProtocolError | urllib3.exceptions.DecodeError):
        return f"broken answer: {_strip(exc)}"
    return f"{type(exc).__name__}: {_strip(exc)}"


def _strip(exc: BaseException) -> str:
    text = str(exc)
    # urllib3 puts object reprs before the useful part: "<...HTTPConnection object at 0x..>: ..."
    text = re.sub(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*", "", text)
    return text or type(exc).__name__
