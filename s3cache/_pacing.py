"""Adaptive pacing, sans-IO: a client-side send-rate limiter for one bucket that backs off when
the server throttles (503 SlowDown and its kin) and gets out of the way when it stops.

Modelled on botocore's ``adaptive`` retry mode (``botocore/retries/adaptive.py``): a token bucket
whose fill rate follows CUBIC, the TCP congestion window's curve. On a throttling reply the rate
drops to ``beta`` times the rate being sent at (measured), and from there grows back along
``scale * (t - k)**3 + w_max``: flat near the rate that was throttled, faster once past it. The
fill rate never exceeds twice the measured rate, so an idle client does not bank a burst. What
differs from botocore, and why:

- **Unlimited until throttled, and again once recovered.** Before the first throttle, and again
  once the CUBIC rate has grown past twice the measured rate (the bucket no longer holds anything
  back), :attr:`Pacer.limited` is False: a send costs one attribute read, no clock, no lock.
- **One back-off per round trip.** Replies to requests sent before the latest back-off are
  counted but do not cut the rate again (as TCP cuts its window once per loss event): a burst
  of 50 SlowDowns from 50 requests in flight halves the rate once, not 50 times. The caller
  reads :attr:`Pacer.epoch` when it sends and passes it back with the reply.
- **Never unbounded waiting.** :meth:`Pacer.reserve` says how long a send must wait for its slot
  and takes the slot only if that is within the caller's bound (the time left before its
  deadline); otherwise it takes nothing and returns None, and the caller fails at once instead
  of waiting past its deadline. Reservations are scheduled (the balance may go negative), so
  concurrent callers are spaced at the rate rather than woken together.
- **A first estimate from the first half-second.** botocore's measured rate is 0 until a full
  time bucket has passed, so a throttle in a client's first half-second drops it to the 0.5/s
  floor; here the partial bucket's count is the estimate until then.

Pure: no I/O, no asyncio, an injectable clock; one instance per bucket per process, used from
one thread (the asyncio wait around :meth:`Pacer.reserve` is the transport's). The pacing is
per process: a fleet-wide rate is out of scope.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["THROTTLING_CODES", "THROTTLING_STATUSES", "Pacer", "PacerState", "is_throttling"]

#: Error codes that mean "slow down" (botocore's throttling list, and S3's 503 codes).
THROTTLING_CODES: Final = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
#: Statuses that mean the same whatever the body says (a HEAD reply has none): S3 sends 503
#: only to throttle; S3-compatible servers often use 429.
THROTTLING_STATUSES: Final = frozenset({429, 503})

_BETA: Final = 0.7  # the fraction of the measured rate kept on a throttle (botocore's)
_SCALE: Final = 0.4  # CUBIC's scaling constant C (botocore's)
_MIN_RATE: Final = 0.5  # requests per second, the floor (botocore's)
_HEADROOM: Final = 2.0  # the fill rate stays within this multiple of the measured rate
_SMOOTHING: Final = 0.8  # weight of the newest time bucket in the measured rate
_BUCKET_S: Final = 0.5  # the measured rate's time bucket


def is_throttling(status: int, code: str | None) -> bool:
    """Whether a reply (HTTP ``status``, S3 error ``code`` if any) asks the client to slow down."""
    return status in THROTTLING_STATUSES or (code is not None and code in THROTTLING_CODES)


@dataclass(frozen=True, slots=True)
class PacerState:
    """What :meth:`Pacer.state` reports (for ``stats()``).

    ``limited``: whether sends are paced now. ``rate``: the send rate allowed, requests per
    second (None while unlimited). ``measured_rate``: replies per second, smoothed (the send rate
    as the server sees it). ``throttles``: throttling replies seen. ``backoffs``: how many of
    them cut the rate. ``delayed``: sends that had to wait. ``refused``: sends refused because
    their wait would have passed the caller's bound.
    """

    limited: bool
    rate: float | None
    measured_rate: float
    throttles: int
    backoffs: int
    delayed: int
    refused: int


class Pacer:
    """A token bucket with CUBIC rate scaling for one bucket's requests (see the module doc).

    Per request, the caller: if :attr:`limited`, calls :meth:`reserve` with the time left before
    its deadline, fails at once on None, else waits the seconds returned; reads :attr:`epoch`
    and sends; on the reply calls :meth:`observe` with whether it was throttling
    (:func:`is_throttling`) and that epoch.

    ``clock``: seconds, monotonic (injectable for tests). ``beta``: the fraction of the measured
    rate kept on a back-off. ``scale``: CUBIC's constant (how fast the rate grows back).
    ``min_rate``: the lowest rate, requests per second.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        beta: float = _BETA,
        scale: float = _SCALE,
        min_rate: float = _MIN_RATE,
    ) -> None:
        if not 0 < beta < 1:
            raise ValueError(f"beta must be between 0 and 1 (exclusive), not {beta!r}")
        if not (scale > 0 and min_rate > 0):
            raise ValueError(f"scale and min_rate must be positive, not {scale!r}, {min_rate!r}")
        self._clock = clock
        self._beta = beta
        self._scale = scale
        self._min_rate = min_rate
        #: Whether sends are paced now (False: :meth:`reserve` would return 0 at once).
        self.limited = False
        #: Bumped on every back-off: a reply to a request sent under an older epoch cannot
        #: cause another.
        self.epoch = 0
        self.throttles = 0
        self.backoffs = 0
        self.delayed = 0
        self.refused = 0
        self._rate = math.inf  # the token bucket's fill rate while limited
        self._tokens = 0.0
        self._refilled = 0.0
        self._w_max = 0.0  # CUBIC: the rate that was throttled last
        self._k = 0.0  # CUBIC: seconds after the back-off until the rate is back at w_max
        self._last_backoff = 0.0
        self._measured = 0.0
        self._count = 0  # replies in the current time bucket
        self._bucket_start = clock()
        self._buckets_seen = 0

    @property
    def rate(self) -> float | None:
        """The send rate allowed now, requests per second; None while unlimited."""
        return self._rate if self.limited else None

    @property
    def measured_rate(self) -> float:
        """Replies per second, smoothed over half-second buckets."""
        return self._measured

    def state(self) -> PacerState:
        """A snapshot of the counters and rates, for ``stats()``."""
        return PacerState(
            self.limited,
            self.rate,
            self._measured,
            self.throttles,
            self.backoffs,
            self.delayed,
            self.refused,
        )

    def reserve(self, limit: float = math.inf) -> float | None:
        """Seconds to wait before sending, with a send slot taken; 0.0 at once while unlimited.

        None, with nothing taken, when the wait would be longer than ``limit`` seconds (the time
        left before the caller's deadline): the caller should fail now rather than wait.
        """
        if not self.limited:
            return 0.0
        now = self._clock()
        self._refill(now)
        wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate
        if wait > limit:
            self.refused += 1
            return None
        self._tokens -= 1.0
        if wait > 0:
            self.delayed += 1
        return wait

    def observe(self, throttled: bool, epoch: int | None = None) -> None:
        """Account for one reply: whether it was throttling, and the :attr:`epoch` read when its
        request was sent (None: treat it as sent now)."""
        now = self._clock()
        self._measure(now)
        if throttled:
            self.throttles += 1
            if epoch is None or epoch == self.epoch:
                self._back_off(now)
        elif self.limited:
            self._recover(now)

    # -- internals ---------------------------------------------------------------------------

    def _measure(self, now: float) -> None:
        self._count += 1
        elapsed = now - self._bucket_start
        if elapsed >= _BUCKET_S:
            rate = self._count / elapsed
            fresh = self._buckets_seen == 0
            self._measured = (
                rate if fresh else _SMOOTHING * rate + (1 - _SMOOTHING) * self._measured
            )
            self._buckets_seen += 1
            self._count = 0
            self._bucket_start = now
        elif self._buckets_seen == 0:  # no full bucket yet: the partial one is the estimate
            self._measured = self._count / _BUCKET_S

    def _back_off(self, now: float) -> None:
        sending = self._measured if not self.limited else min(self._measured, self._rate)
        self._w_max = sending
        self._k = (sending * (1 - self._beta) / self._scale) ** (1 / 3)
        self._last_backoff = now
        if not self.limited:
            self.limited = True
            self._tokens = 0.0
            self._refilled = now
        self._set_rate(sending * self._beta, now)
        self.epoch += 1
        self.backoffs += 1

    def _recover(self, now: float) -> None:
        cubic = self._scale * (now - self._last_backoff - self._k) ** 3 + self._w_max
        ceiling = _HEADROOM * self._measured
        if cubic >= ceiling:  # the bucket would hold nothing back any more
            self.limited = False
            self._rate = math.inf
            return
        self._set_rate(cubic, now)

    def _set_rate(self, rate: float, now: float) -> None:
        self._refill(now)  # tokens earned so far count at the old rate
        self._rate = max(rate, self._min_rate)
        self._tokens = min(self._tokens, max(1.0, self._rate))

    def _refill(self, now: float) -> None:
        if now > self._refilled:
            capacity = max(1.0, self._rate)
            self._tokens = min(capacity, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
