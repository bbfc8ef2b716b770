"""The parts of one cache that its read, write and removal paths share, bundled once."""

from __future__ import annotations

from dataclasses import dataclass

from s3cache._coherence import Coherence
from s3cache._entries import Entries
from s3cache._recorder import Recorder
from s3cache._transport import Transport

__all__ = ["Parts"]


@dataclass(frozen=True, slots=True)
class Parts:
    """A cache's ``transport``, ``coherence`` (single flight, local tier), ``recorder`` (counts,
    observer, ``on_error``) and ``entries`` (its codec), as the core built them."""

    transport: Transport
    coherence: Coherence
    recorder: Recorder
    entries: Entries
