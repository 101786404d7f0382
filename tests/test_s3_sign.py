"""The fast path's SigV4 signature (archiver/store/s3_fast.py) is botocore's, byte for byte."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from archiver.store.s3_fast import sign

_SIGNED = ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token")


@pytest.mark.parametrize(("url", "token", "region"), [
    ("http://127.0.0.1:5000/bench/", "session-token", "us-east-1"),
    ("https://bucket.s3.eu-west-3.amazonaws.com/", None, "eu-west-3"),
    ("https://s3.example.com:8443/bucket/pre%20fix/", None, "auto"),
    ("http://[::1]:9000/bucket/", "t", "us-east-1"),
])
def test_sign_matches_botocore(url: str, token: str | None, region: str) -> None:
    body = b"\xff\xd8 some jpeg bytes" * 100
    key = "media/ab/ü x+y#z~.jpg"
    headers = {"Content-Type": "image/jpeg", "Content-Length": str(len(body)),
               "If-None-Match": "*", "x-amz-meta-source-url": "http://a.example/x  y?z=1",
               "x-amz-meta-sha256": hashlib.sha256(body).hexdigest(), "Expect": "100-continue"}
    full = url + quote(key, safe="/~")
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    theirs = AWSRequest(method="PUT", url=full, data=io.BytesIO(body), headers=dict(headers))
    S3SigV4Auth(credentials.get_frozen_credentials(), "s3", region).add_auth(theirs)
    when = datetime.strptime(theirs.context["timestamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sign("PUT", full, headers, hashlib.sha256(body).hexdigest(),
                credentials.get_frozen_credentials(), region, now=when)
    for name in _SIGNED:
        assert ours.get(name) == theirs.headers.get(name), name
    assert {k: v for k, v in ours.items() if k not in _SIGNED} == headers


def test_sign_refuses_a_query_string() -> None:
    with pytest.raises(ValueError):
        sign("PUT", "http://h/b/k?x=1", {}, "0" * 64,
             Credentials("a", "b").get_frozen_credentials(), "us-east-1")
