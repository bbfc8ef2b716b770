"""What the server supports for conditional writes, probed once per cache, published whole.

Some S3-compatible servers ignore ``If-None-Match: *`` on PutObject, some do not honour
``If-Match``, and Ceph RGW 16.2 refuses the quoted ETag (as S3 returns it) even when it
matches. :class:`Learner` finds out with a probe object in s3cache's reserved namespace, on
first need, each part once per event loop however many callers arrive meanwhile (they share
the probe), and publishes each part only when it is complete: nobody ever sees a half-learned
value. ``add()``, leases, locks and the doctor only read the result; ``check()`` learns both
parts afresh on its own probe object (through aiobotocore) and publishes them whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from s3cache import _format
from s3cache._flight import Flights
from s3cache._format import Payload
from s3cache._transport import Transport
from s3cache.errors import NotSupportedError

__all__ = ["Capabilities", "IfMatchForm", "Learner", "if_match_value"]

T = TypeVar("T")

#: How a server takes the ETag in ``If-Match`` on PutObject: ``"quoted"`` as S3 returns it (AWS,
#: MinIO, SeaweedFS, moto), ``"unquoted"`` (Ceph RGW 16.2 answers 412 to the quoted form even
#: when it matches), or ``"unsupported"`` (refused in both forms, or ignored).
IfMatchForm = Literal["quoted", "unquoted", "unsupported"]
#: An ETag no object has, to see whether a server really compares If-Match.
_NO_SUCH_ETAG: Final = "00000000000000000000000000000000"


def if_match_value(etag: str, form: IfMatchForm | None) -> str:
    """``etag`` (as a response carries it) in ``form`` for an ``If-Match`` header: bare for
    ``"unquoted"``, quoted (the S3 form) otherwise. The one place that decides the quoting."""
    bare = etag.strip().strip('"')
    return bare if form == "unquoted" else f'"{bare}"'


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server does with conditional PutObjects (see :meth:`AsyncS3Cache.capabilities`).

    ``conditional_create``: ``If-None-Match: *`` is honoured (``add()``, leases and locks need
    it). ``if_match_form``: the ETag form ``If-Match`` is honoured in (``"quoted"``, as S3
    returns it, or ``"unquoted"``, for Ceph RGW 16.2), None when it is not honoured at all.
    """

    conditional_create: bool
    if_match_form: Literal["quoted", "unquoted"] | None

    @property
    def conditional_replace(self) -> bool:
        """``If-Match`` on PutObject is honoured in some form (``add()`` over an expired entry,
        leases and locks need it)."""
        return self.if_match_form is not None

    def if_match(self, etag: str) -> str:
        """``etag`` as this server takes it in ``If-Match``."""
        return if_match_value(etag, self.if_match_form)


class Learner:
    """Learns one cache's :class:`Capabilities` on ``transport``, with probes under ``prefix``;
    ``where`` names the server in :class:`NotSupportedError` messages."""

    __slots__ = ("_create", "_flights", "_form", "_prefix", "_transport", "_where")

    def __init__(self, transport: Transport, prefix: str, where: str) -> None:
        self._transport = transport
        self._prefix = prefix
        self._where = where
        self._flights = Flights()  # one probe per part and event loop, shared by its callers
        self._create: bool | None = None  # published when known
        self._form: IfMatchForm | None = None  # published when known

    def known(self) -> Capabilities | None:
        """The capabilities, if both parts are learned already (no request)."""
        if self._create is None or self._form is None:
            return None
        return Capabilities(self._create, None if self._form == "unsupported" else self._form)

    async def learn(self) -> Capabilities:
        """Both parts, probed now for those not learned yet."""
        create = await self.conditional_create()
        form = await self.if_match_form()
        return Capabilities(create, None if form == "unsupported" else form)

    async def conditional_create(self) -> bool:
        """Whether ``If-None-Match: *`` is honoured: a second create of a probe is refused."""
        if self._create is None:
            self._create = await self._shared("create", self._probe_create)
        return self._create

    async def if_match_form(self) -> IfMatchForm:
        """The ``If-Match`` form this server honours on PutObject (see :data:`IfMatchForm`)."""
        if self._form is None:
            form: IfMatchForm = await self._shared("replace", self._probe_replace)
            self._form = form
            return form
        return self._form

    async def require_create(self, what: str) -> None:
        """Raise NotSupportedError unless ``If-None-Match`` is honoured (``what`` needs it:
        ``add()``, leases, locks)."""
        if not await self.conditional_create():
            raise NotSupportedError(
                f"the server at {self._where} ignores If-None-Match on PutObject, so {what} "
                "cannot be atomic there"
            )

    async def require(self, what: str) -> Capabilities:
        """The capabilities, when both conditional create and replace are honoured (``what``
        needs them: ``add()`` over an expired entry, leases, locks); else NotSupportedError."""
        await self.require_create(what)
        form = await self.if_match_form()
        if form == "unsupported":
            raise NotSupportedError(
                f"the server at {self._where} does not honour If-Match on PutObject, so {what} "
                "cannot be atomic there"
            )
        return Capabilities(True, form)

    async def _shared(self, part: str, probe: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``probe()``, run once for every caller waiting on this part on this event loop."""
        return await self._flights.join(part, probe)

    async def _probe_create(self) -> bool:
        transport = self._transport
        probe, payload = _format.probe_entry(self._prefix, time.time())
        try:
            await transport.put_if(probe, payload, if_absent=True)
            return not (await transport.put_if(probe, payload, if_absent=True)).stored
        finally:
            await transport.delete(probe)

    async def _probe_replace(self) -> IfMatchForm:
        transport = self._transport
        probe, payload = _format.probe_entry(self._prefix, time.time())
        await transport.put(probe, payload)
        try:
            return await self._form_on(probe, payload, botocore=False)
        finally:
            await transport.delete(probe)

    async def relearn(self, probe: str, payload: Payload) -> Capabilities:
        """Both parts learned afresh on the existing probe object ``probe`` (``check()``'s,
        holding ``payload``), through aiobotocore, then published whole."""
        written = await self._transport.put_if(probe, payload, if_absent=True, botocore=True)
        create = not written.stored
        form = await self._form_on(probe, payload, botocore=True)
        self._create, self._form = create, form
        return Capabilities(create, None if form == "unsupported" else form)

    async def _form_on(self, probe: str, payload: Payload, *, botocore: bool) -> IfMatchForm:
        """On the existing probe object: the matching ETag quoted, else unquoted, must be
        accepted, and a wrong ETag in that form refused (the probe is rewritten)."""
        transport = self._transport
        headers = await transport.head(probe, botocore=botocore)
        etag = headers.get("etag") if headers is not None else None
        if not etag:
            return "unsupported"
        form: IfMatchForm
        for form in ("quoted", "unquoted"):
            value = if_match_value(etag, form)
            if (await transport.put_if(probe, payload, if_match=value, botocore=botocore)).stored:
                wrong = if_match_value(_NO_SUCH_ETAG, form)
                written = await transport.put_if(probe, payload, if_match=wrong, botocore=botocore)
                return "unsupported" if written.stored else form
        return "unsupported"
