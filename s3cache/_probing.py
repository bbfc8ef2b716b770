"""What a cache learns of its server, a mixin of :class:`~s3cache.AsyncS3Cache`: ``check()``
(a round trip that proves the bucket works, with what the server lacks) and the conditional
writes it honours (``capabilities()``, ``supports_*``), each probed once and remembered."""

from __future__ import annotations

from s3cache import _check
from s3cache._capabilities import Capabilities, Learner
from s3cache._check import CheckReport
from s3cache._recorder import Recorder
from s3cache._settings import Settings
from s3cache._transport import Transport
from s3cache.errors import CacheClosedError

__all__ = ["Probing"]


class Probing:
    """``check()``, ``capabilities()`` and ``supports_*`` on the core's parts."""

    _settings: Settings
    _recorder: Recorder
    _transport: Transport
    _capabilities: Learner

    async def check(self) -> CheckReport:
        """Prove the bucket exists and is writable (HeadBucket; put, get, conditional create and
        replace, delete a probe, via aiobotocore); the report says what the server lacks (and
        :meth:`capabilities` answers from it). Call it at startup to fail there: it always raises
        (whatever ``on_error`` says) an S3CacheError naming the cause (no such bucket, access
        denied, bad credentials, endpoint unreachable) and a configuration error's fix."""
        self._check_open()
        at = self._settings.shown_endpoint, self._recorder.explain
        return await _check.check(self._transport, self._capabilities, self._settings.prefix, *at)

    async def capabilities(self) -> Capabilities:
        """What the server does with conditional writes: ``If-None-Match: *`` honoured, and the
        ETag form ``If-Match`` is honoured in. Probed once per cache (concurrent callers share
        the probe), then remembered; never half-learned."""
        self._check_open()
        return await self._capabilities.learn()

    async def supports_conditional_writes(self) -> bool:
        """Whether the server honours ``If-None-Match: *``: probed once, then remembered.

        :meth:`add`, leases and locks need it; some S3-compatible servers silently ignore the
        header.
        """
        self._check_open()
        return await self._capabilities.conditional_create()

    async def supports_conditional_replace(self) -> bool:
        """Whether the server honours ``If-Match`` on PutObject: probed once, then remembered.

        :meth:`add` needs it to replace an expired entry. Servers differ in the ETag form they
        take (Ceph RGW refuses it quoted, as S3 returns it); :meth:`capabilities` says which
        one s3cache found and sends.
        """
        self._check_open()
        return await self._capabilities.if_match_form() != "unsupported"

    def _check_open(self) -> None:
        """Raise :class:`~s3cache.errors.CacheClosedError` once the cache is closed."""
        if self._transport.closed:
            raise CacheClosedError(f"{self!r} is closed")
