"""The S3 connector against a real moto server (server mode, over HTTP on 127.0.0.1): list/get/put/
delete, row and size caps, read-only, credentials checked by moto's IAM emulation, typed errors,
timeouts and the outbound guard."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from apps.datasources.connectors import base
from apps.datasources.connectors import s3 as s3_module
from apps.datasources.connectors.s3 import S3Connector
from tests.conftest import free_port

LOOPBACK = ["127.0.0.0/8"]
LOG_CONTENT_TYPE = "text/x-log; charset=utf-8"  # stored with logs/app.log; `get` must report it
ANY_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def raw(moto_endpoint: str) -> Any:
    """A plain boto3 client on the moto server, to set up and inspect behind the connector's back."""
    return boto3.client("s3", endpoint_url=moto_endpoint, **ANY_KEYS)


@pytest.fixture
def bucket(raw: Any, moto_endpoint: str, settings: Any) -> dict[str, Any]:
    """A fresh bucket with a few objects, and the connector config for it."""
    settings.JETADMIN_OUTBOUND_ALLOW = LOOPBACK
    name = f"jet-{uuid.uuid4().hex[:12]}"
    raw.create_bucket(Bucket=name)
    for i in range(25):
        raw.put_object(Bucket=name, Key=f"reports/2024-{i:02d}.csv", Body=f"month,{i}\n".encode())
    raw.put_object(Bucket=name, Key="logs/app.log", Body=b"started\n", ContentType=LOG_CONTENT_TYPE)
    raw.put_object(Bucket=name, Key="img/pixel.bin", Body=bytes([0x89, 0x50, 0xFF, 0x00, 0xFE]))
    return {
        "region": "us-east-1",
        "bucket": name,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "endpoint_url": moto_endpoint,
        "timeout_s": 5,
    }


def keys(raw: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_health_check_and_unknown_bucket(bucket: dict[str, Any]) -> None:
    S3Connector.check_config(bucket)
    S3Connector(bucket).health_check()
    missing = {**bucket, "bucket": "no-such-bucket-here"}
    with pytest.raises(base.Unreachable, match=r"S3 bucket 'no-such-bucket-here' .* does not exist"):
        S3Connector(missing).health_check()
    with pytest.raises(base.Unreachable, match=r"'no-such-bucket-here' .* does not exist: check the bucket"):
        S3Connector(missing).execute({"action": "list"})


def test_list_with_prefix_and_row_cap(bucket: dict[str, Any]) -> None:
    c = S3Connector(bucket)
    r = c.execute({"action": "list", "prefix": ":p"}, {"p": "reports/"})
    assert r.columns == ["key", "size", "last_modified", "etag"]
    assert (r.row_count, r.truncated) == (25, False)
    assert r.rows[0][0] == "reports/2024-00.csv" and r.rows[0][1] == len(b"month,0\n")
    assert r.rows[0][2].startswith("20") and r.rows[0][3] and '"' not in r.rows[0][3]

    capped = c.execute({"action": "list", "prefix": "reports/"}, row_limit=10)
    assert (capped.row_count, capped.truncated) == (10, True)
    assert [row[0] for row in capped.rows] == [f"reports/2024-{i:02d}.csv" for i in range(10)]
    assert c.execute({"action": "list", "max_keys": 3}).truncated is True
    exact = c.execute({"action": "list", "prefix": "reports/"}, row_limit=25)
    assert (exact.row_count, exact.truncated) == (25, False)
    after = c.execute({"action": "list", "prefix": "reports/", "start_after": "reports/2024-22.csv"})
    assert [row[0] for row in after.rows] == ["reports/2024-23.csv", "reports/2024-24.csv"]
    assert c.execute({"action": "list", "prefix": "nothing/"}).rows == []


def test_list_follows_continuation_tokens(
    bucket: dict[str, Any], raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paging with continuation tokens, without putting 1000 objects: every page asks for at most the
    remainder, so a cap of 12 with pages of 5 takes three requests."""
    calls: list[int] = []
    c = S3Connector(bucket)
    client = c._make_client(5)
    real = client.list_objects_v2

    def small_pages(**kwargs: Any) -> Any:
        kwargs["MaxKeys"] = min(kwargs["MaxKeys"], 5)
        calls.append(kwargs["MaxKeys"])
        return real(**kwargs)

    monkeypatch.setattr(client, "list_objects_v2", small_pages)
    c.client = client
    r = c.execute({"action": "list", "prefix": "reports/"}, row_limit=12)
    assert (r.row_count, r.truncated) == (12, True) and len(calls) == 3
    assert [row[0] for row in r.rows] == [f"reports/2024-{i:02d}.csv" for i in range(12)]


def test_get_text_binary_missing_and_size_cap(
    bucket: dict[str, Any], raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = S3Connector(bucket)
    r = c.execute({"action": "get", "key": "%(k)s"}, {"k": "logs/app.log"})
    assert r.columns == ["key", "content_type", "size", "body"]
    assert r.rows == [["logs/app.log", LOG_CONTENT_TYPE, 8, "started\n"]] and r.extra["encoding"] == "utf-8"
    assert not r.truncated

    binary = c.execute({"action": "get", "key": "img/pixel.bin"})
    assert binary.extra["encoding"] == "base64"
    assert base64.b64decode(binary.rows[0][3]) == bytes([0x89, 0x50, 0xFF, 0x00, 0xFE])

    with pytest.raises(base.BadQuery, match=r"No object 'logs/missing\.log' in S3 bucket"):
        c.execute({"action": "get", "key": "logs/missing.log"})

    raw.put_object(Bucket=bucket["bucket"], Key="big.txt", Body=("é" * 40).encode())  # 80 bytes
    monkeypatch.setattr(s3_module, "MAX_OBJECT_BYTES", 25)  # cuts inside a two-byte character
    big = c.execute({"action": "get", "key": "big.txt"})
    assert big.truncated and big.extra["body_truncated_at"] == 25
    assert big.rows[0][2] == 80 and big.rows[0][3] == "é" * 12 and big.extra["encoding"] == "utf-8"


def test_put_get_round_trip_and_delete(bucket: dict[str, Any], raw: Any) -> None:
    c = S3Connector(bucket)
    put = c.execute(
        {"action": "put", "key": ":key", "body": ":body"}, {"key": "out/ünï.txt", "body": "héllo\n"}
    )
    assert put.columns == ["key", "etag", "size"] and put.rows[0][0] == "out/ünï.txt" and put.rows[0][2] == 7
    got = c.execute({"action": "get", "key": "out/ünï.txt"})
    assert got.rows[0][1] == "text/plain; charset=utf-8" and got.rows[0][3] == "héllo\n"

    c.execute({"action": "put", "key": "out/data.json", "body": {"rows": [1, 2]}})
    data = c.execute({"action": "get", "key": "out/data.json"})
    assert data.rows[0][1] == "application/json" and json.loads(data.rows[0][3]) == {"rows": [1, 2]}

    blob = base64.b64encode(b"\x00\x01\xff").decode()
    c.execute({"action": "put", "key": "out/blob", "body": blob, "encoding": "base64"})
    assert raw.get_object(Bucket=bucket["bucket"], Key="out/blob")["Body"].read() == b"\x00\x01\xff"
    with pytest.raises(base.BadQuery, match="not valid base64"):
        c.execute({"action": "put", "key": "out/bad", "body": "***", "encoding": "base64"})

    deleted = c.execute({"action": "delete", "key": "out/blob"})
    assert deleted.rows == [["out/blob", True]]
    assert "out/blob" not in keys(raw, bucket["bucket"])


def test_read_only_refuses_put_and_delete(bucket: dict[str, Any], raw: Any) -> None:
    c = S3Connector({**bucket, "read_only": True})
    with pytest.raises(base.ReadOnlyViolation, match="read-only: S3 put is refused"):
        c.execute({"action": "put", "key": "logs/app.log", "body": "overwritten"})
    with pytest.raises(base.ReadOnlyViolation, match="read-only: S3 delete is refused"):
        c.execute({"action": "delete", "key": ":k"}, {"k": "logs/app.log"})
    assert raw.get_object(Bucket=bucket["bucket"], Key="logs/app.log")["Body"].read() == b"started\n"
    assert c.execute({"action": "get", "key": "logs/app.log"}).rows[0][3] == "started\n"  # reads still work


@pytest.fixture
def iam_auth(moto_endpoint: str, bucket: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Moto checking credentials: an IAM user whose key may use S3, then auth enforced for every
    request (``/moto-api/reset-auth`` sets INITIAL_NO_AUTH_ACTION_COUNT to 0) until teardown."""
    iam = boto3.client("iam", endpoint_url=moto_endpoint, **ANY_KEYS)
    user = f"jet-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]

    def reset_auth(count: bytes) -> None:
        request = urllib.request.Request(  # noqa: S310 (our moto server, http)
            f"{moto_endpoint}/moto-api/reset-auth",
            data=count,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            response.read()

    reset_auth(b"0")
    try:
        yield {**bucket, "access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    finally:
        reset_auth(b"inf")


def test_credentials_checked_by_moto(iam_auth: dict[str, Any]) -> None:
    good = iam_auth
    S3Connector(good).health_check()
    assert S3Connector(good).execute({"action": "list", "prefix": "logs/"}).row_count == 1

    secret = good["secret_access_key"]
    # One character changed (a fixed "x" left a secret starting with "x" unchanged: 1 run in ~60 failed).
    wrong_secret = {**good, "secret_access_key": ("y" if secret[0] == "x" else "x") + secret[1:]}
    assert wrong_secret["secret_access_key"] != secret
    with pytest.raises(base.AuthFailed, match="check the secret access key") as info:
        S3Connector(wrong_secret).execute({"action": "list"})
    assert secret not in str(info.value) and wrong_secret["secret_access_key"] not in str(info.value)
    with pytest.raises(base.AuthFailed, match="check the access key ID, the secret"):
        S3Connector(wrong_secret).health_check()  # HEAD: a bare 403 without an error code

    unknown = {**good, "access_key_id": "AKIAUNKNOWN000000000"}
    with pytest.raises(base.AuthFailed, match="does not know this access key ID"):
        S3Connector(unknown).execute({"action": "get", "key": "logs/app.log"})


def test_wrong_endpoint_port_is_unreachable_not_a_hang(bucket: dict[str, Any]) -> None:
    started = time.monotonic()
    with pytest.raises(base.Unreachable, match=r"Cannot connect to S3 bucket .* at 127\.0\.0\.1:\d+"):
        S3Connector({**bucket, "endpoint_url": f"http://127.0.0.1:{free_port()}"}).health_check()
    assert time.monotonic() - started < 5


def test_a_silent_endpoint_times_out(bucket: dict[str, Any]) -> None:
    """A port that accepts TCP and never answers: QueryTimeout after the read timeout (one retry)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        config = {**bucket, "endpoint_url": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        started = time.monotonic()
        with pytest.raises(base.QueryTimeout, match=r"did not answer within 0\.3 s"):
            S3Connector(config).execute({"action": "list"}, timeout_s=0.3)
        assert time.monotonic() - started < 5


def test_loopback_endpoint_refused_without_an_allowance(
    bucket: dict[str, Any], raw: Any, settings: Any
) -> None:
    settings.JETADMIN_OUTBOUND_ALLOW = []
    c = S3Connector(bucket)
    with pytest.raises(base.DestinationRefused, match="loopback"):
        c.health_check()
    with pytest.raises(base.DestinationRefused, match="loopback"):
        c.execute({"action": "put", "key": "smuggled.txt", "body": "x"})
    with pytest.raises(base.DestinationRefused, match="never allowed"):
        S3Connector({**bucket, "endpoint_url": "http://169.254.169.254/"}).health_check()
    assert "smuggled.txt" not in keys(raw, bucket["bucket"])


def test_config_and_body_validation() -> None:
    assert S3Connector.secret_fields() == ["secret_access_key"]
    with pytest.raises(base.ConfigInvalid) as info:
        S3Connector.check_config({"bucket": "x", "region": "us east", "extra": True})
    assert {"bucket", "region", "config"} <= set(info.value.errors)
    with pytest.raises(base.ConfigInvalid, match="Only http and https"):
        S3Connector.check_config({"bucket": "jet-bucket", "endpoint_url": "file:///etc/passwd"})
    with pytest.raises(base.ConfigInvalid, match="both the access key ID and the secret"):
        S3Connector.check_config({"bucket": "jet-bucket", "access_key_id": "AKIA0000"})
    S3Connector.check_config({"bucket": "jet-bucket"})  # anonymous: public buckets

    c = S3Connector({"bucket": "jet-bucket"})
    assert c.validate({"action": "list", "prefix": "a/"}) == []
    assert c.validate({"action": "copy"}) == [
        "An S3 query is an object whose action is one of list, get, put, delete."
    ]
    assert c.validate({"action": "get"}) == ["key is required."]
    assert c.validate({"action": "put", "key": "k", "bdy": "x"}) == [
        "Unknown field 'bdy' for put; use action, body, content_type, encoding, key.",
        "body is required.",
    ]
    with pytest.raises(base.BadQuery, match="Missing query parameter: k"):
        c.execute({"action": "get", "key": ":k"}, {})
    with pytest.raises(base.BadQuery, match="max_keys must be a positive"):
        S3Connector({"bucket": "jet-bucket", "read_only": True}).execute({"action": "list", "max_keys": 0})


def test_never_the_environments_credentials_endpoint_or_proxy(
    bucket: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without keys the datasource is anonymous — not the server's own AWS identity; AWS_ENDPOINT_URL
    and proxy variables (which would bypass the address check) are ignored."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASERVERSOWNKEY000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "the-servers-own-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:1")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    default = S3Connector({"bucket": "jet-bucket", "region": "eu-west-1"})._make_client(5)
    assert default.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"

    anonymous = {k: v for k, v in bucket.items() if k not in ("access_key_id", "secret_access_key")}
    c = S3Connector(anonymous)
    c.client = c._make_client(5)
    sent: list[dict[str, str]] = []
    c.client.meta.events.register("before-send.s3", lambda request, **_: sent.append(dict(request.headers)))
    assert c.execute({"action": "list", "prefix": "logs/"}).rows[0][0] == "logs/app.log"  # no proxy used
    assert sent and all("Authorization" not in headers for headers in sent)
