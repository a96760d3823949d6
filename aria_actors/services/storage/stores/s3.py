"""A chunk store in S3-compatible object storage, in desync's key layout.

A chunk is the object ``<prefix>/<xxxx>/<id>.cacnk`` of the bucket (``<xxxx>/<id>.cacnk``
without a prefix), as desync's ``s3+http(s)://host:port/bucket/prefix`` stores keep
them. A ``PutObject`` is atomic (readers see the whole object or none); it is sent
with ``If-None-Match: *`` so that a chunk already there is left as it is (a server
that does not implement conditional writes gets plain ones after its first refusal).

One boto3 client (thread-safe; its connection pool holds ``pool_size`` connections)
serves every thread; the boto3 session that makes it is used in the constructor
only. boto3 retries throttling and transient errors itself (``retries`` times, its
"standard" mode); what remains is a :class:`StoreError` naming the store, the bucket
and what S3 said: a missing bucket, refused credentials (``AccessDenied``,
``InvalidAccessKeyId``, ``SignatureDoesNotMatch``...), an unreachable endpoint.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any, Final, Literal, NoReturn

import boto3
import botocore.config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from ..errors import ChunkMissing, StoreError
from ..ids import ChunkId
from .base import Store
from .http import MAX_STORED_SIZE

AddressingStyle = Literal["auto", "path", "virtual"]

_KEY: Final = re.compile(r"([0-9a-f]{4})/([0-9a-f]{64})\.cacnk")
_MISSING: Final = frozenset({"NoSuchKey", "NotFound", "404"})
_DENIED: Final = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "403",
        "Forbidden",
    }
)
_NO_CONDITIONAL: Final = frozenset({"NotImplemented", "501"})


def _code(exc: ClientError) -> tuple[str, int]:
    response: dict[str, Any] = exc.response
    code = str(response.get("Error", {}).get("Code", "") or "")
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


class S3Store(Store):
    """desync's S3 chunk store. See the module documentation.

    ``endpoint_url`` is the S3 API (``http://127.0.0.1:9000``; AWS when ``None``).
    Credentials are ``access_key`` / ``secret_key`` (/ ``session_token``), else
    ``profile``, else boto3's usual chain (``AWS_*`` variables, config files, instance
    roles). ``addressing_style`` is desync's ``lookup`` (``path`` = ``lookup=path``,
    ``virtual`` = ``lookup=dns``). ``verify`` checks TLS certificates; a string is a CA
    bundle to trust. ``max_size`` caps a chunk read.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        addressing_style: AddressingStyle = "auto",
        verify: bool | str = True,
        timeout: float = 30.0,
        retries: int = 3,
        pool_size: int = 16,
        writable: bool = True,
        max_size: int = MAX_STORED_SIZE,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._key_prefix = f"{self.prefix}/" if self.prefix else ""
        self.endpoint_url = endpoint_url
        if endpoint_url:
            self.location = f"s3+{endpoint_url.rstrip('/')}/{bucket}/{self.prefix}".rstrip("/")
        else:
            self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.writable = writable
        self.max_size = max_size
        if not bucket or "/" in bucket:
            raise StoreError(
                f"S3 store {self.location}: bad bucket name {bucket!r}", store=self.location
            )
        if addressing_style not in ("auto", "path", "virtual"):
            raise StoreError(
                f"S3 store {self.location}: addressing_style must be auto, path or virtual, "
                f"not {addressing_style!r}",
                store=self.location,
            )
        self._conditional = True
        self._bucket_seen = False
        self._lock = threading.Lock()
        try:
            session = boto3.session.Session(
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                aws_session_token=session_token,
                region_name=region,
                profile_name=profile,
            )
            config = botocore.config.Config(
                max_pool_connections=pool_size,
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": max(0, retries) + 1, "mode": "standard"},
                s3={"addressing_style": addressing_style},
                signature_version="s3v4",
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                user_agent_extra="aria-storage",
            )
            self._client: Any = session.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region or session.region_name or "us-east-1",
                config=config,
                verify=verify,
            )
        except (BotoCoreError, ValueError) as exc:  # ProfileNotFound, a bad endpoint...
            raise StoreError(f"S3 store {self.location}: {exc}", store=self.location) from None

    def key(self, chunk_id: ChunkId) -> str:
        """The object key of a chunk."""
        h = chunk_id.hex()
        return f"{self._key_prefix}{h[:4]}/{h}.cacnk"

    def _fail(self, op: str, exc: Exception, chunk_id: ChunkId | None = None) -> NoReturn:
        what = f"{op} {chunk_id}" if chunk_id is not None else op
        where = f"store {self.location}: {what}"
        if isinstance(exc, ClientError):
            code, status = _code(exc)
            message = str(exc.response.get("Error", {}).get("Message", "") or "")
            said = f": {message}" if message else ""
            if code == "NoSuchBucket":
                text = f"{where}: bucket {self.bucket!r} does not exist"
            elif code in _DENIED or status == 403:
                text = (
                    f"{where}: access denied ({code or status}{said}); "
                    "check the credentials (S3_ACCESS_KEY / S3_SECRET_KEY or AWS_*) and "
                    f"what they may do in bucket {self.bucket!r}"
                )
            else:
                text = f"{where}: {code or 'error'} (HTTP {status}){said}"
        elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
            text = (
                f"{where}: no usable credentials ({exc}); set S3_ACCESS_KEY and S3_SECRET_KEY "
                "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or pass them"
            )
        elif isinstance(exc, EndpointConnectionError):
            text = f"{where}: cannot reach the S3 endpoint: {exc}"
        else:
            text = f"{where}: {type(exc).__name__}: {exc}"
        raise StoreError(text, store=self.location) from None

    def get(self, chunk_id: ChunkId) -> bytes:
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=self.key(chunk_id))
            body = reply["Body"]
            try:
                size = int(reply.get("ContentLength") or 0)
                if size > self.max_size:
                    raise StoreError(
                        f"store {self.location}: chunk {chunk_id} has {size} bytes, over the "
                        f"{self.max_size}-byte limit",
                        store=self.location,
                    )
                data = body.read()
            finally:
                body.close()
        except ClientError as exc:
            code, status = _code(exc)
            if code in _MISSING or (status == 404 and code != "NoSuchBucket"):
                raise ChunkMissing(
                    f"chunk {chunk_id} is not in store {self.location}", chunk_id=str(chunk_id)
                ) from None
            self._fail("reading", exc, chunk_id)
        except (BotoCoreError, OSError) as exc:
            self._fail("reading", exc, chunk_id)
        return bytes(data)

    def has(self, chunk_id: ChunkId) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key(chunk_id))
        except ClientError as exc:
            code, status = _code(exc)
            if code in _MISSING or (status == 404 and code != "NoSuchBucket"):
                self._check_bucket()
                return False
            self._fail("looking up", exc, chunk_id)
        except (BotoCoreError, OSError) as exc:
            self._fail("looking up", exc, chunk_id)
        return True

    def _check_bucket(self) -> None:
        """Once: that the bucket exists (a ``HEAD`` answers a bare 404 for both)."""
        if self._bucket_seen:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code, status = _code(exc)
            if status == 404 or code in ("NoSuchBucket", "404", "NotFound"):
                raise StoreError(
                    f"store {self.location}: bucket {self.bucket!r} does not exist",
                    store=self.location,
                ) from None
            return  # no right to look at the bucket itself: say nothing more
        except (BotoCoreError, OSError) as exc:
            self._fail("looking up the bucket", exc)
        self._bucket_seen = True

    def size(self, chunk_id: ChunkId) -> int:
        try:
            reply = self._client.head_object(Bucket=self.bucket, Key=self.key(chunk_id))
        except ClientError as exc:
            code, status = _code(exc)
            if code in _MISSING or (status == 404 and code != "NoSuchBucket"):
                self._check_bucket()
                raise ChunkMissing(
                    f"chunk {chunk_id} is not in store {self.location}", chunk_id=str(chunk_id)
                ) from None
            self._fail("looking up", exc, chunk_id)
        except (BotoCoreError, OSError) as exc:
            self._fail("looking up", exc, chunk_id)
        return int(reply["ContentLength"])

    def put(self, chunk_id: ChunkId, blob: bytes) -> None:
        self._refuse_write()
        key = self.key(chunk_id)
        for _ in range(3):
            conditional = self._conditional
            extra = {"IfNoneMatch": "*"} if conditional else {}
            try:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=blob,
                    ContentType="application/octet-stream",
                    **extra,
                )
                return
            except ClientError as exc:
                code, status = _code(exc)
                if conditional and (code == "PreconditionFailed" or status == 412):
                    return  # already there: left as it is
                if conditional and code == "ConditionalRequestConflict":
                    continue  # another writer of the same chunk: try again
                if conditional and (code in _NO_CONDITIONAL or status == 501):
                    with self._lock:
                        self._conditional = False
                    continue
                self._fail("writing", exc, chunk_id)
            except (BotoCoreError, OSError) as exc:
                self._fail("writing", exc, chunk_id)
        if not self.has(chunk_id):  # pragma: no cover - conflicts three times running
            raise StoreError(
                f"store {self.location}: writing {chunk_id}: conflicting writers",
                store=self.location,
            )

    def remove(self, chunk_id: ChunkId) -> None:
        self._refuse_write()
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self.key(chunk_id))
        except ClientError as exc:
            code, status = _code(exc)
            if code in _MISSING or (status == 404 and code != "NoSuchBucket"):
                return
            self._fail("removing", exc, chunk_id)
        except (BotoCoreError, OSError) as exc:
            self._fail("removing", exc, chunk_id)

    def ids(self) -> Iterator[ChunkId]:
        start = len(self._key_prefix)
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key_prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    key: str = item["Key"]
                    m = _KEY.fullmatch(key, start)
                    if m and m.group(2).startswith(m.group(1)):
                        yield ChunkId(bytes.fromhex(m.group(2)))
        except (ClientError, BotoCoreError, OSError) as exc:
            self._fail("listing", exc)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"S3Store({self.location!r})"
