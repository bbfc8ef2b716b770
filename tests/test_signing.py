"""Signed entries: the signature format (sans-IO), the constructor's checks, and, against the S3
server on both request paths, that no forged, unsigned, tampered or foreign-key entry is ever
served, counted or deleted, while rotation, get_or_set, the local tier and the facade work."""

from __future__ import annotations

import base64
import logging
import secrets
from typing import Any

import pytest

from s3cache import AsyncS3Cache, LocalTier, S3Cache, _expiry, _format, _signing, _tags
from s3cache._signing import SIGNATURE_HEADER, SIGNATURE_METADATA, Signer, key_id
from tests.conftest import CREDENTIALS, Requests
from tests.test_wire import on_the_wire

KEY = b"k" * 32
OLD = b"o" * 24
OTHER = secrets.token_bytes(32)
BOTH_PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["wire", "aiobotocore"])
MISSING = object()


def _headers(payload: _format.Payload) -> dict[str, str]:
    """What a GET of ``payload`` returns, as the transport reports it (lower-cased)."""
    return {**_format.payload_headers(payload), "date": "x", "etag": '"e"'}


def _signed(okey: str = "p/k", ttl: float | None = 60.0, signer: Signer | None = None) -> Any:
    payload = _format.encode({"v": 1}, ttl, _format.JsonSerializer(), 0.0)
    return (signer or Signer([KEY])).sign(okey, payload)


# -- the format, pure -------------------------------------------------------------------------


def test_a_signature_is_a_version_a_key_id_and_an_hmac_in_user_metadata() -> None:
    payload = _signed()
    version, kid, mac = payload.metadata[SIGNATURE_METADATA].split(":")
    assert (version, kid, len(mac)) == ("v1", key_id(KEY), 64)
    assert payload.metadata[_expiry.TTL_METADATA] == "60"  # the rest is unchanged
    assert Signer([KEY]).verify("p/k", payload.body, _headers(payload)) is None
    assert key_id(KEY) != key_id(OLD)
    assert KEY.hex()[:8] not in kid


def _tampered(name: str) -> tuple[str, bytes, dict[str, str]]:
    payload = _signed()
    okey, body, headers = "p/k", payload.body, _headers(payload)
    if name == "body":
        body = b'{"v":2}'
    elif name == "ttl changed":
        headers[_expiry.TTL_HEADER] = "86400"
    elif name == "ttl removed":
        del headers[_expiry.TTL_HEADER]
    elif name == "content type":
        headers["content-type"] = _format.BYTES_CONTENT_TYPE
    elif name == "encoding added":
        headers["content-encoding"] = "gzip"
    elif name == "another key":
        okey = "p/other"
    elif name == "mac":
        sig = headers[SIGNATURE_HEADER]
        headers[SIGNATURE_HEADER] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    elif name == "garbled":
        headers[SIGNATURE_HEADER] = "v1:" + key_id(KEY) + ":é" * 32
    elif name == "version":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].replace("v1", "v9", 1)
    return okey, body, headers


TAMPERED = [
    "body",
    "ttl changed",
    "ttl removed",
    "content type",
    "encoding added",
    "another key",
    "mac",
    "garbled",
    "version",
]


@pytest.mark.parametrize("change", TAMPERED)
def test_any_change_to_what_is_signed_is_altered(change: str) -> None:
    assert Signer([KEY]).verify(*_tampered(change)) == "altered"


def test_unsigned_and_unknown_key_entries_say_so() -> None:
    payload = _signed()
    headers = _headers(payload)
    unsigned = {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}
    assert Signer([KEY]).verify("p/k", payload.body, unsigned) == "unsigned"
    assert Signer([OTHER]).verify("p/k", payload.body, headers) == "unknown_key"
    assert Signer([KEY]).check_headers(headers) is None
    assert Signer([KEY]).check_headers(unsigned) == "unsigned"
    assert Signer([OTHER]).check_headers(headers) == "unknown_key"


def test_rotation_signs_with_the_first_key_and_verifies_with_any() -> None:
    old = _signed(signer=Signer([OLD]))
    rotated = Signer([KEY, OLD])
    assert rotated.verify("p/k", old.body, _headers(old)) is None
    new = _signed(signer=rotated)
    assert new.metadata[SIGNATURE_METADATA].split(":")[1] == key_id(KEY)
    assert Signer([KEY]).verify("p/k", new.body, _headers(new)) is None
    assert Signer([OLD]).verify("p/k", new.body, _headers(new)) == "unknown_key"


def test_a_field_added_to_the_signed_list_is_signed_and_older_entries_still_verify(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """New metadata fields join the signature through MEANING_HEADERS alone."""
    before = _signed()
    field = "x-amz-meta-s3cache-delta"
    monkeypatch.setattr(_signing, "MEANING_HEADERS", (*_format.MEANING_HEADERS, field))
    assert Signer([KEY]).verify("p/k", before.body, _headers(before)) is None
    payload = _format.encode({"v": 1}, 60.0, _format.JsonSerializer(), 0.0)
    payload.metadata["s3cache-delta"] = "0.25"
    after = Signer([KEY]).sign("p/k", payload)
    headers = _headers(after)
    assert Signer([KEY]).verify("p/k", after.body, headers) is None
    headers[field] = "9"
    assert Signer([KEY]).verify("p/k", after.body, headers) == "altered"


def test_an_entrys_tags_are_signed_so_stripping_or_changing_them_is_detected() -> None:
    """Invalidation by tag relies on the tags field: stripping it breaks the signature."""
    assert _tags.TAGS_HEADER in _format.MEANING_HEADERS
    payload = _format.encode({"v": 1}, 60.0, _format.JsonSerializer(), 0.0)
    signed = Signer([KEY]).sign("p/k", _tags.with_tags(payload, ("doc:42", "user:7")))
    headers = _headers(signed)
    assert Signer([KEY]).verify("p/k", signed.body, headers) is None
    stripped = {k: v for k, v in headers.items() if k != _tags.TAGS_HEADER}
    assert Signer([KEY]).verify("p/k", signed.body, stripped) == "altered"
    assert Signer([KEY]).verify("p/k", signed.body, {**headers, _tags.TAGS_HEADER: "doc:42"}) == (
        "altered"
    )


BAD_KEYS: list[tuple[Any, type[Exception], str]] = [
    ("a string key of 32 chars........", TypeError, "not str .encode it, or decode a base64"),
    (b"short", ValueError, "at least 16 bytes .128 bits., not 5"),
    ([], ValueError, "must not be an empty list"),
    ([KEY, b"tiny"], ValueError, r"signing_key\[1\] must be at least 16 bytes"),
    ([KEY, "str"], TypeError, r"signing_key\[1\] must be bytes, not str"),
    (12345, TypeError, "must be bytes, or a list of bytes for rotation, not int"),
]


@pytest.mark.parametrize(("key", "error", "match"), BAD_KEYS, ids=lambda v: str(v)[:20])
def test_bad_signing_keys_are_refused_at_construction(
    key: Any, error: type[Exception], match: str
) -> None:
    for cls in (AsyncS3Cache, S3Cache):
        with pytest.raises(error, match=match) as caught:
            cls("bucket", endpoint_url="http://127.0.0.1:9", signing_key=key)
        assert "....." not in str(caught.value)
        assert "tiny" not in str(caught.value)


def test_the_signing_key_never_shows_in_a_repr() -> None:
    cache = AsyncS3Cache("bucket", signing_key=[KEY, OLD], sse_customer_key=OTHER)
    for text in (repr(cache), repr(cache._entries.signer), repr(cache.stats())):
        for secret in (KEY, OLD, OTHER):
            assert base64.b64encode(secret).decode() not in text
            assert secret.decode("latin-1") not in text
    assert repr(cache._entries.signer) == "Signer(<2 key(s) hidden>)"


def test_the_keys_of_configuration_text_are_base64_with_commas() -> None:
    text = ", ".join(base64.b64encode(k).decode() for k in (KEY, OLD))
    assert _signing.decode_keys(text, "$X") == [KEY, OLD]
    with pytest.raises(ValueError, match=r"\$X must be base64 .* the value is not shown"):
        _signing.decode_keys("not*base64", "$X")


# -- against the server: nothing forged is ever served -----------------------------------------


@pytest.fixture
def signed_kwargs(cache_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**cache_kwargs, "prefix": "signed", "default_ttl": 600, "signing_key": KEY}


GENUINE = "signed/genuine"


def _plant(s3: Any, bucket: str, case: str) -> str:
    """Put one forged or tampered entry in the bucket the way an attacker would (boto3 on its
    own, without the key), after a genuine entry ``genuine`` was written; returns its key."""
    okey = f"signed/{case}"
    genuine = s3.get_object(Bucket=bucket, Key=GENUINE)
    body, meta = genuine["Body"].read(), genuine["Metadata"]
    put = {"Bucket": bucket, "Key": okey, "ContentType": "application/json"}
    if case == "unsigned":
        s3.put_object(**put, Body=b'{"evil": true}', Metadata={"s3cache-ttl": "600"})
    elif case == "fake-signature":
        fake = f"v1:{key_id(KEY)}:{'0' * 64}"
        s3.put_object(**put, Body=b'{"evil": true}', Metadata={**meta, SIGNATURE_METADATA: fake})
    elif case == "body-changed":
        s3.put_object(**put, Body=b'{"evil": true}', Metadata=meta)
    elif case == "ttl-changed":
        s3.put_object(**put, Body=body, Metadata={**meta, "s3cache-ttl": "99999"})
    elif case == "type-changed":
        s3.put_object(
            **{**put, "ContentType": "application/octet-stream"}, Body=body, Metadata=meta
        )
    elif case == "copied":
        s3.copy_object(Bucket=bucket, Key=okey, CopySource={"Bucket": bucket, "Key": GENUINE})
    return okey.removeprefix("signed/")


FORGED = {
    "unsigned": "unsigned",
    "fake-signature": "altered",
    "body-changed": "altered",
    "ttl-changed": "altered",
    "type-changed": "altered",
    "copied": "altered",
}


@BOTH_PATHS
async def test_no_forged_unsigned_or_tampered_entry_is_served(
    signed_kwargs: dict[str, Any],
    s3: Any,
    bucket: str,
    fast_path: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with AsyncS3Cache(**signed_kwargs, fast_path=fast_path, on_error="raise") as cache:
        await cache.set("genuine", {"v": "genuine"})
        keys = [_plant(s3, bucket, case) for case in FORGED]
        with caplog.at_level(logging.WARNING, logger="s3cache"):
            for key in keys:
                assert await cache.get(key, MISSING) is MISSING, key
            assert await cache.get_many(keys) == {}
            assert await cache.get("genuine") == {"v": "genuine"}  # the real one still serves
        assert on_the_wire(cache) is fast_path
        stats = cache.stats()
    assert stats.unverified == {"unsigned": 2, "altered": 10}
    assert (stats.hits, stats.misses) == (1, 12)
    logged = [r.getMessage() for r in caplog.records]
    assert any("'signed/unsigned' is not signed: not served" in m for m in logged)
    altered = [m for m in logged if "is altered since it was signed" in m]
    assert len(altered) == 1  # rate-limited, per reason: ten misses, one line
    assert "'signed/fake-signature'" in altered[0]
    # Never deleted: each is still there, as planted.
    for key in keys:
        assert s3.head_object(Bucket=bucket, Key=f"signed/{key}")["ContentLength"] > 0


@BOTH_PATHS
async def test_exists_refuses_what_a_head_shows_is_not_signed_by_a_known_key(
    signed_kwargs: dict[str, Any], s3: Any, bucket: str, fast_path: bool
) -> None:
    async with AsyncS3Cache(**signed_kwargs, fast_path=fast_path, on_error="raise") as cache:
        await cache.set("genuine", 1)
        _plant(s3, bucket, "unsigned")
        assert await cache.exists("genuine")
        assert not await cache.exists("unsigned")
        assert cache.stats().unverified == {"unsigned": 1}
    async with AsyncS3Cache(**{**signed_kwargs, "signing_key": OTHER}) as stranger:
        assert not await stranger.exists("genuine")
        assert stranger.stats().unverified == {"unknown_key": 1}


@BOTH_PATHS
async def test_rotation_old_key_verifies_new_key_signs(
    signed_kwargs: dict[str, Any], fast_path: bool
) -> None:
    options = {**signed_kwargs, "fast_path": fast_path, "on_error": "raise"}
    async with AsyncS3Cache(**{**options, "signing_key": OLD}) as old:
        await old.set("before", "written with the old key")
    async with AsyncS3Cache(**{**options, "signing_key": [KEY, OLD]}) as rotated:
        assert await rotated.get("before") == "written with the old key"
        await rotated.set("after", "written with the new key")
        assert rotated.stats().unverified == {}
    async with AsyncS3Cache(**{**options, "signing_key": KEY}) as new_only:
        assert await new_only.get("after") == "written with the new key"
        assert await new_only.get("before", MISSING) is MISSING  # the old key was retired
        assert new_only.stats().unverified == {"unknown_key": 1}
    async with AsyncS3Cache(**{**options, "signing_key": OLD}) as old:
        assert await old.get("after", MISSING) is MISSING
    async with AsyncS3Cache(**{**options, "signing_key": None}) as unsigning:
        assert await unsigning.get("after") == "written with the new key"  # no key: no check


@BOTH_PATHS
@pytest.mark.parametrize("lease", [None, 5])
async def test_get_or_set_recomputes_and_overwrites_an_unverified_entry(
    signed_kwargs: dict[str, Any], s3: Any, bucket: str, fast_path: bool, lease: int | None
) -> None:
    s3.put_object(
        Bucket=bucket, Key="signed/answer", Body=b'"forged"', ContentType="application/json"
    )
    calls: list[int] = []

    def factory() -> str:
        calls.append(1)
        return "computed"

    async with AsyncS3Cache(**signed_kwargs, fast_path=fast_path, on_error="raise") as cache:
        assert await cache.get_or_set("answer", factory, lease=lease) == "computed"
        assert await cache.get_or_set("answer", factory, lease=lease) == "computed"
    assert calls == [1]
    head = s3.head_object(Bucket=bucket, Key="signed/answer")
    assert head["Metadata"][SIGNATURE_METADATA].startswith(f"v1:{key_id(KEY)}:")


async def test_the_local_tier_never_holds_an_unverified_entry(
    signed_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    local = LocalTier(ttl=60)
    async with AsyncS3Cache(**signed_kwargs, local=local, on_error="raise") as cache:
        await cache.set("genuine", "real")
        _plant(s3, bucket, "body-changed")
        for _ in range(3):
            assert await cache.get("body-changed", MISSING) is MISSING
        assert await cache.get("genuine") == "real"
        stats = cache.stats()
        assert cache._coherence.local is not None
        assert len(cache._coherence.local) == 1  # only the genuine entry
    assert stats.unverified == {"altered": 3}
    assert stats.local_hits == 1


async def test_verification_adds_no_request(counted: AsyncS3Cache, requests: Requests) -> None:
    async with AsyncS3Cache(
        bucket=counted.bucket,
        endpoint_url=requests.proxy.endpoint,
        **CREDENTIALS,
        prefix="f",
        signing_key=KEY,
    ) as cache:
        await cache.set("k", {"v": 1})
        await counted.set("unsigned", 1)  # same prefix, no key
        requests.clear()
        assert await cache.get("k") == {"v": 1}
        assert await cache.get("unsigned", MISSING) is MISSING
        assert requests.sent == {"GetObject": 2}


async def test_compressed_entries_are_signed_as_stored(
    signed_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    options = {**signed_kwargs, "compression": "gzip", "compression_threshold": 0}
    async with AsyncS3Cache(**options, on_error="raise") as cache:
        await cache.set("zipped", {"v": "x" * 100})
        assert await cache.get("zipped") == {"v": "x" * 100}
        stored = s3.get_object(Bucket=bucket, Key="signed/zipped")
        assert stored["ContentEncoding"] == "gzip"
        s3.put_object(  # the same bytes, claimed plain: no longer what was signed
            Bucket=bucket,
            Key="signed/zipped",
            Body=stored["Body"].read(),
            ContentType="application/json",
            Metadata=stored["Metadata"],
        )
        assert await cache.get("zipped", MISSING) is MISSING
        assert cache.stats().unverified == {"altered": 1}


def test_the_facade_signs_and_refuses_alike(
    signed_kwargs: dict[str, Any], s3: Any, bucket: str
) -> None:
    with S3Cache(**signed_kwargs, on_error="raise") as cache:
        cache.set("genuine", [1, 2])
        assert cache.get("genuine") == [1, 2]
        _plant(s3, bucket, "unsigned")
        assert cache.get("unsigned", MISSING) is MISSING
        assert cache.stats().unverified == {"unsigned": 1}
