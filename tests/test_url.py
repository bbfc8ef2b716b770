"""Cache URLs (``s3cache._url``): ``s3://bucket/prefix?...`` to constructor arguments and back,
every refusal (none showing a secret), ``S3CACHE_URL``, the merge with explicit arguments, and
a cache built from a URL against the test server."""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest

from s3cache import AsyncS3Cache, LocalTier, S3Cache
from s3cache._url import (
    ALIASES,
    ENV_VAR,
    OBJECTS,
    PARAMETERS,
    PENDING,
    SECRETS,
    from_environ,
    merge,
    parse_url,
    to_url,
)
from tests.conftest import CREDENTIALS

CONSTRUCTOR: frozenset[str] = frozenset(inspect.signature(AsyncS3Cache.__init__).parameters) - {
    "self"
}


# -- what a URL gives ------------------------------------------------------------------------


def test_the_issues_example_parses_into_constructor_arguments() -> None:
    kwargs = parse_url(
        "s3://bucket/prefix?endpoint_url=http://localhost:9000&region=eu-west-1&ttl=1h"
    )
    assert kwargs == {
        "bucket": "bucket",
        "prefix": "prefix/",
        "endpoint_url": "http://localhost:9000",
        "region_name": "eu-west-1",
        "default_ttl": 3600.0,
    }


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://my-bucket", "my-bucket", ""),
        ("s3://my-bucket/", "my-bucket", ""),
        ("s3://my-bucket/a/b", "my-bucket", "a/b/"),
        ("s3://my-bucket/a/b/", "my-bucket", "a/b/"),
        ("s3://My_Legacy.Bucket/x", "My_Legacy.Bucket", "x/"),  # case kept
        ("s3://my-bucket/caf%C3%A9/a%20b", "my-bucket", "café/a b/"),
        ("S3://my-bucket/p", "my-bucket", "p/"),
        ("  s3://my-bucket/p \n", "my-bucket", "p/"),
    ],
)
def test_the_host_is_the_bucket_and_the_path_the_prefix(url: str, bucket: str, prefix: str) -> None:
    assert parse_url(url) == {"bucket": bucket, "prefix": prefix}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("region_name=us-east-2", {"region_name": "us-east-2"}),
        ("default_ttl=90", {"default_ttl": 90.0}),
        ("ttl=1h30m", {"default_ttl": 5400.0}),
        ("use_ssl=FALSE&endpoint_url=http://h:1", {"use_ssl": False, "endpoint_url": "http://h:1"}),
        ("verify=false", {"verify": False}),
        ("verify=True", {"verify": True}),
        ("verify=/etc/ssl/ca.pem", {"verify": "/etc/ssl/ca.pem"}),
        ("max_concurrency=8&timeout=2.5", {"max_concurrency": 8, "timeout": 2.5}),
        ("timeout=500ms", {"timeout": 0.5}),
        ("on_error=raise", {"on_error": "raise"}),
        ("compression=gzip&compression_threshold=0", {"compression": "gzip",
                                                      "compression_threshold": 0}),
        ("fast_path=false", {"fast_path": False}),
        ("api_version=2006-03-01", {"api_version": "2006-03-01"}),
        ("sse=aws:kms&sse_kms_key_id=alias/cache&sse_bucket_key_enabled=true",
         {"sse": "aws:kms", "sse_kms_key_id": "alias/cache", "sse_bucket_key_enabled": True}),
        ("expected_bucket_owner=111122223333&checksum=crc32&storage_class=STANDARD_IA"
         "&request_payer=requester",
         {"expected_bucket_owner": "111122223333", "checksum": "crc32",
          "storage_class": "STANDARD_IA", "request_payer": "requester"}),
        ("local=true", {"local": LocalTier()}),
        ("local=false", {}),
        ("local_max_items=10", {"local": LocalTier(max_items=10)}),
        ("local=true&local_max_bytes=1024&local_ttl=2s",
         {"local": LocalTier(max_bytes=1024, ttl=2.0)}),
    ],
)  # fmt: skip
def test_the_query_gives_plain_settings(query: str, expected: dict[str, Any]) -> None:
    assert parse_url(f"s3://bkt/p?{query}") == {"bucket": "bkt", "prefix": "p/", **expected}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bucket": "bkt", "prefix": ""},
        {"bucket": "bkt", "prefix": "a b/é/"},
        {"bucket": "bkt", "prefix": "p/", "endpoint_url": "http://localhost:9000/base",
         "region_name": "eu-west-1", "use_ssl": False, "verify": "/ca dir/bundle.pem"},
        {"bucket": "bkt", "prefix": "p/", "default_ttl": 5400.0, "timeout": 0.25,
         "max_concurrency": 8, "on_error": "raise", "fast_path": False},
        {"bucket": "bkt", "prefix": "p/", "default_ttl": 1.5, "verify": False},
        {"bucket": "bkt", "prefix": "p/", "compression": "zstd", "compression_threshold": 0},
        {"bucket": "bkt", "prefix": "p/", "sse": "aws:kms:dsse", "sse_kms_key_id":
         "arn:aws:kms:us-east-1:111122223333:key/abc", "sse_bucket_key_enabled": False,
         "expected_bucket_owner": "111122223333", "checksum": "sha256",
         "storage_class": "GLACIER_IR", "request_payer": "requester"},
        {"bucket": "bkt", "prefix": "p/", "local": LocalTier()},
        {"bucket": "bkt", "prefix": "p/", "local": LocalTier(max_items=5, ttl=0.5)},
    ],
)  # fmt: skip
def test_to_url_and_parse_url_round_trip(kwargs: dict[str, Any]) -> None:
    url = to_url(kwargs)
    assert parse_url(url) == kwargs
    assert to_url(parse_url(url)) == url


def test_to_url_writes_the_short_spellings_and_durations_as_durations() -> None:
    given = {"bucket": "bkt", "prefix": "app/", "region_name": "eu-west-1", "default_ttl": 86_400}
    url = to_url({**given, "timeout": 2.5, "endpoint_url": "http://h:9000"})
    assert url == "s3://bkt/app/?endpoint_url=http://h:9000&region=eu-west-1&ttl=1d&timeout=2s500ms"
    assert to_url({"bucket": "bkt", "ttl": 60, "region": "x", "use_ssl": None}) == (
        "s3://bkt/?region=x&ttl=1m"
    )


def test_every_constructor_parameter_is_decided_for() -> None:
    """A new constructor parameter fails here until it is put in the URL table, or among the
    objects or secrets a URL refuses; a pending feature's parameter leaves PENDING when it lands."""
    url_names = set(PARAMETERS) - PENDING - {"local_max_items", "local_max_bytes", "local_ttl"}
    assert url_names <= CONSTRUCTOR
    assert CONSTRUCTOR - url_names - OBJECTS - SECRETS == {"bucket", "prefix"}
    assert PENDING.isdisjoint(CONSTRUCTOR), "a pending parameter has landed: drop it from PENDING"
    assert set(ALIASES.values()) <= CONSTRUCTOR
    assert {f"local_{f}" for f in ("max_items", "max_bytes", "ttl")} <= set(PARAMETERS)


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://bkt/p", "must start with s3://"),
        ("bkt/p", "must start with s3://"),
        ("s3://AKIAEXAMPLE:hunter2@bkt/p", "must not contain user info"),
        ("s3://hunter2@bkt/p", "must not contain user info"),
        ("s3://bkt:9000/p", "cannot have a port"),
        ("s3:///p", "names no bucket"),
        ("s3://b/p", "not a valid bucket name"),
        ("s3://-bkt/p", "not a valid bucket name"),
        ("s3://bk..t/p", "not a valid bucket name"),
        ("s3://bkt%20x/p", "not a valid bucket name"),
        ("s3://[::1]/p", "cannot have a port"),
        ("s3://[bkt/p", "is not a URL"),
        ("s3://bkt/p#hunter2", "must not have a fragment"),
        ("s3://bkt//p", "empty, '.' or '..' path segment"),
        ("s3://bkt/a/../b", "empty, '.' or '..' path segment"),
        ("s3://bkt/a%00b", "control character"),
        ("s3://bkt/p?hunter2", "name=value pairs"),
        ("s3://bkt/p?ttl=1h&&hunter2", "name=value pairs"),
        ("s3://bkt/p?colour=hunter2", "unknown parameter 'colour'"),
        ("s3://bkt/p?ttl=1h&ttl=2h", "ttl given twice"),
        ("s3://bkt/p?region=a&region_name=b", "region and region_name name one option"),
        ("s3://bkt/p?ttl=", "ttl has no value"),
        ("s3://bkt/p?bucket=other", "the bucket is the URL's host"),
        ("s3://bkt/p?prefix=other", "the prefix is the URL's path"),
        ("s3://bkt/p?use_ssl=yes", "use_ssl must be true or false"),
        ("s3://bkt/p?max_concurrency=8.5", "max_concurrency must be a whole number"),
        ("s3://bkt/p?max_concurrency=%D9%A3", "max_concurrency must be a whole number"),
        ("s3://bkt/p?max_concurrency=0", "max_concurrency must be at least 1"),
        ("s3://bkt/p?timeout=0", "timeout must be a positive, finite number"),
        ("s3://bkt/p?timeout=soon", "timeout 'soon' is not a duration"),
        ("s3://bkt/p?ttl=1x", "ttl '1x' is not a duration"),
        ("s3://bkt/p?ttl=500ms", "at least 1 second"),
        ("s3://bkt/p?ttl=0", "must be positive"),
        ("s3://bkt/p?on_error=ignore", "on_error must be one of log, raise"),
        ("s3://bkt/p?compression=brotli", "compression must be one of zstd, gzip"),
        ("s3://bkt/p?sse=kms", "sse must be one of"),
        ("s3://bkt/p?checksum=md5", "checksum must be one of"),
        ("s3://bkt/p?request_payer=owner", "request_payer must be one of requester"),
        ("s3://bkt/p?sse_kms_key_id=alias/x", "sse_kms_key_id goes with sse="),
        ("s3://bkt/p?storage_class=GLACIER", "archives objects"),
        ("s3://bkt/p?storage_class=CHEAP", "storage_class"),
        ("s3://bkt/p?expected_bucket_owner=me", "expected_bucket_owner"),
        ("s3://bkt/p?endpoint_url=ftp://h", "http:// or https:// URL"),
        ("s3://bkt/p?endpoint_url=http://u:hunter2@h:9000", "must not contain user info"),
        ("s3://bkt/p?endpoint_url=https://h&use_ssl=false", "use_ssl=False contradicts"),
        ("s3://bkt/p?local=false&local_ttl=1", "local=false contradicts local_ttl"),
        ("s3://bkt/p?local_max_items=0", "LocalTier.max_items must be"),
        ("s3://bkt/p?local_ttl=0s", "LocalTier.ttl must be positive"),
        ("s3://bkt/p?session=hunter2", "session takes an object"),
        ("s3://bkt/p?config=hunter2", "config takes an object"),
        ("s3://bkt/p?serializer=yaml", "serializer must be one of json, pickle, msgpack"),
        ("s3://bkt/p?observer=x", "observer takes an object"),
        ("s3://bkt/p?layout=hashed", "layout is not supported by this version"),
        ("s3://bkt/p?pricing=gcs", "pricing must be one of"),
    ],
)
def test_every_refusal_names_the_problem_and_never_a_secret(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=r"^s3cache URL") as caught:
        parse_url(url)
    assert words in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None  # no chained exception carrying the URL either


@pytest.mark.parametrize(
    "name",
    [*sorted(SECRETS), "signing_key", "password", "aws_secret", "token", "api_key"],
)
def test_secrets_are_refused_by_name_without_their_value(name: str) -> None:
    with pytest.raises(ValueError, match="cannot be in a URL: secrets stay out") as caught:
        parse_url(f"s3://bkt/p?{name}=hunter2")
    assert "hunter2" not in str(caught.value)
    assert "credential chain" in str(caught.value)


def test_a_url_must_be_text() -> None:
    with pytest.raises(TypeError, match="s3cache URL must be a str, not bytes"):
        parse_url(b"s3://bkt/p")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"bucket": "bkt", "aws_secret_access_key": "hunter2"}, "cannot be in a URL"),
        ({"bucket": "bkt", "sse_customer_key": b"hunter2" * 5}, "cannot be in a URL"),
        ({"bucket": "bkt", "session": object()}, "session takes an object"),
        ({"bucket": "bkt", "layout": "hashed"}, "not supported by this version"),
        ({"bucket": "bkt", "colour": "hunter2"}, "unknown parameter 'colour'"),
        ({"bucket": "bkt", "local_ttl": 3}, "unknown parameter 'local_ttl'"),
        ({"bucket": "bkt", "local": {"ttl": 3}}, "local must be a LocalTier"),
        ({"prefix": "p/"}, "needs the bucket name"),
    ],
)
def test_to_url_refuses_what_a_url_cannot_carry(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        to_url(kwargs)
    assert "hunter2" not in str(caught.value)


# -- the environment and explicit arguments ------------------------------------------------


def test_s3cache_url_unset_or_blank_gives_nothing() -> None:
    assert from_environ({}) == {}
    assert from_environ({ENV_VAR: "  "}) == {}


def test_s3cache_url_gives_its_arguments_and_its_errors_name_the_variable() -> None:
    assert from_environ({ENV_VAR: "s3://bkt/p?ttl=15m"}) == {
        "bucket": "bkt",
        "prefix": "p/",
        "default_ttl": 900.0,
    }
    with pytest.raises(ValueError, match=r"^S3CACHE_URL must not contain user info"):
        from_environ({ENV_VAR: "s3://k:hunter2@bkt/p"})


def test_explicit_arguments_win_and_none_counts_as_not_given() -> None:
    defaults = {"timeout": 10.0, "max_concurrency": 32}
    url = parse_url("s3://bkt/p?region=eu-west-1&timeout=2&ttl=1h")
    explicit = {"region_name": None, "timeout": 5.0, "prefix": "other", "on_error": "raise"}
    merged = merge(defaults, url, explicit)
    assert merged == {
        "timeout": 5.0,
        "max_concurrency": 32,
        "bucket": "bkt",
        "prefix": "other",
        "region_name": "eu-west-1",  # the explicit None did not mask the URL's
        "default_ttl": 3600.0,
        "on_error": "raise",
    }
    assert url["timeout"] == 2.0  # inputs untouched


# -- a cache from a URL, on the test server -------------------------------------------------


async def test_a_cache_from_a_url_stores_with_the_urls_settings(
    s3_endpoint: str, bucket: str, s3: Any
) -> None:
    url = f"s3://{bucket}/app?endpoint_url={s3_endpoint}&ttl=1h&local_max_items=10"
    async with AsyncS3Cache(**merge(parse_url(url), CREDENTIALS, {"on_error": "raise"})) as cache:
        assert (cache.bucket, cache.prefix) == (bucket, "app/")
        await cache.set("user:1", {"n": 1})
        assert await cache.get("user:1") == {"n": 1}
        assert cache.stats().local_hits == 1  # the URL's local tier answered
    head = s3.head_object(Bucket=bucket, Key="app/user/1")
    assert head["Metadata"]["s3cache-ttl"] == "3600"


def test_a_sync_cache_from_s3cache_url_with_credentials_from_the_environment(
    s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    monkeypatch.setenv(ENV_VAR, f"s3://{bucket}/env?endpoint_url={s3_endpoint}&on_error=raise")
    cache = S3Cache(**from_environ(os.environ))
    try:
        cache.set("k", "v")
        assert cache.get("k") == "v"
        assert list(cache.iter_keys()) == ["k"]
    finally:
        cache.close()
