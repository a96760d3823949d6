"""The S3 store against moto's S3 server: desync's key layout, errors, conditional writes."""

from __future__ import annotations

import concurrent.futures

import pytest
from botocore.stub import Stubber

from aria_actors.services.storage.errors import ChunkMissing, StoreError
from aria_actors.services.storage.stores.chain import open_store
from aria_actors.services.storage.stores.s3 import S3Store
from tests.servers._util import free_port
from tests.servers.fixtures import S3Bucket

from .stores_support import chunk

pytestmark = pytest.mark.integration


def s3(bucket: S3Bucket, prefix: str = "", **options: object) -> S3Store:
    settings: dict[str, object] = {
        "endpoint_url": bucket.endpoint,
        "region": bucket.region,
        "access_key": bucket.access_key,
        "secret_key": bucket.secret_key,
        "retries": 0,
    }
    settings.update(options)
    return S3Store(bucket.name, prefix, **settings)  # type: ignore[arg-type]


def keys(bucket: S3Bucket) -> list[str]:
    client = bucket.server.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


@pytest.mark.parametrize(
    ("prefix", "key_prefix"), [("", ""), ("store", "store/"), ("/a/b/", "a/b/")]
)
def test_desyncs_key_layout(s3_bucket: S3Bucket, prefix: str, key_prefix: str) -> None:
    store = s3(s3_bucket, prefix)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    h = chunk_id.hex()
    assert keys(s3_bucket) == [f"{key_prefix}{h[:4]}/{h}.cacnk"]
    assert store.size(chunk_id) == len(blob)


def test_ids_ignores_foreign_objects_and_other_prefixes(s3_bucket: S3Bucket) -> None:
    store = s3(s3_bucket, "mine")
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    client = s3_bucket.server.client()
    h = chunk()[0].hex()
    for key in (
        "mine/README",
        f"mine/{h[:4]}/not-an-id.cacnk",
        f"mine/ffff/{h}.cacnk" if not h.startswith("ffff") else f"mine/0000/{h}.cacnk",
        f"mine/{h[:4]}/{h}.cacnk.tmp",
        f"mine2/{h[:4]}/{h}.cacnk",
        f"{h[:4]}/{h}.cacnk",
    ):
        client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"x")
    assert list(store.ids()) == [chunk_id]


def test_ids_pages_through_more_than_a_thousand(s3_bucket: S3Bucket) -> None:
    store = s3(s3_bucket, "many")
    made = [chunk(size=16 + i)[0:2] for i in range(1050)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: store.put(*c), made))
    assert set(store.ids()) == {c for c, _ in made}


def test_a_chunk_already_there_is_left_as_it_is(s3_bucket: S3Bucket) -> None:
    store = s3(s3_bucket)
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    store.put(chunk_id, b"other bytes, same id")  # If-None-Match: * keeps the first
    assert store.get(chunk_id) == blob


def test_a_server_without_conditional_writes_gets_plain_ones(s3_bucket: S3Bucket) -> None:
    store = s3(s3_bucket)
    chunk_id, blob, _ = chunk()
    key = store.key(chunk_id)
    with Stubber(store._client) as stub:
        stub.add_client_error(
            "put_object", service_error_code="NotImplemented", http_status_code=501
        )
        stub.add_response(
            "put_object",
            {},
            expected_params={
                "Bucket": s3_bucket.name,
                "Key": key,
                "Body": blob,
                "ContentType": "application/octet-stream",
            },
        )
        store.put(chunk_id, blob)
        stub.assert_no_pending_responses()
    assert not store._conditional


def test_a_missing_bucket_is_named(s3_bucket: S3Bucket) -> None:
    store = s3(s3_bucket)
    store.bucket = "no-such-bucket-here"
    chunk_id, blob, _ = chunk()
    for call in (
        lambda: store.get(chunk_id),
        lambda: store.has(chunk_id),
        lambda: store.size(chunk_id),
        lambda: store.put(chunk_id, blob),
        lambda: list(store.ids()),
    ):
        with pytest.raises(StoreError, match="bucket 'no-such-bucket-here' does not exist"):
            call()


@pytest.mark.parametrize(
    "code", ["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"]
)
def test_refused_credentials_are_named(s3_bucket: S3Bucket, code: str) -> None:
    store = s3(s3_bucket)
    chunk_id, blob, _ = chunk()
    with Stubber(store._client) as stub:
        for method in ("get_object", "head_object", "put_object", "delete_object"):
            stub.add_client_error(method, service_error_code=code, http_status_code=403)
        for call in (
            lambda: store.get(chunk_id),
            lambda: store.has(chunk_id),
            lambda: store.put(chunk_id, blob),
            lambda: store.remove(chunk_id),
        ):
            with pytest.raises(StoreError, match=rf"access denied \({code}.*credentials"):
                call()


def test_no_credentials_at_all(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3Store(s3_bucket.name, endpoint_url=s3_bucket.endpoint, retries=0)
    with pytest.raises(StoreError, match="no usable credentials"):
        store.get(chunk()[0])


def test_an_unreachable_endpoint_is_named() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3Store("b", endpoint_url=endpoint, access_key="a", secret_key="s", retries=0)
    with pytest.raises(StoreError, match="cannot reach the S3 endpoint") as caught:
        store.get(chunk()[0])
    assert endpoint in str(caught.value)
    assert caught.value.store == f"s3+{endpoint}/b"


def test_a_bad_profile_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="no-such-profile"):
        S3Store("b", profile="no-such-profile")


def test_open_store_reads_desyncs_variables(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("S3_ACCESS_KEY", s3_bucket.access_key)
    monkeypatch.setenv("S3_SECRET_KEY", s3_bucket.secret_key)
    monkeypatch.setenv("S3_REGION", s3_bucket.region)
    store = open_store(s3_bucket.location("desync/store") + "?lookup=path")
    chunk_id, blob, _ = chunk()
    store.put(chunk_id, blob)
    h = chunk_id.hex()
    assert keys(s3_bucket) == [f"desync/store/{h[:4]}/{h}.cacnk"]
    assert store.get(chunk_id) == blob
    store.remove(chunk_id)
    with pytest.raises(ChunkMissing):
        store.get(chunk_id)
    store.close()
