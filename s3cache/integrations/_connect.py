"""How a framework integration gets its cache: an existing one (``cache=``), or one it opens.

Every integration takes either ``cache=`` (an :class:`~s3cache.AsyncS3Cache` or
:class:`~s3cache.S3Cache`) or the connection arguments of :class:`~s3cache.AsyncS3Cache`. It
then holds both faces of one core: async methods await the core on the caller's loop, sync
methods go through the facade (s3cache's private loop), never through a thread executor.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Final

from s3cache._core import AsyncS3Cache
from s3cache._sync import S3Cache

__all__ = ["Connected", "Connection", "connect"]

#: Keyword arguments :class:`AsyncS3Cache` takes after the bucket.
CORE_OPTIONS: Final = frozenset(inspect.signature(AsyncS3Cache.__init__).parameters) - {
    "self",
    "bucket",
}


@dataclass(frozen=True, slots=True)
class Connection:
    """The core, its sync facade, and whether the integration opened it (and so closes it)."""

    core: AsyncS3Cache
    sync: S3Cache
    owned: bool

    async def aclose(self) -> None:
        """Close the core if it was opened for the integration; a shared one stays open."""
        if self.owned:
            await self.core.close()

    def close(self) -> None:
        """Blocking :meth:`aclose`."""
        if self.owned:
            self.sync.close()


def connect(
    owner: str,
    bucket: str | None,
    cache: AsyncS3Cache | S3Cache | None,
    options: dict[str, Any],
) -> Connection:
    """Validate ``owner``'s constructor arguments and return the cache they name."""
    if cache is not None:
        if bucket is not None or options:
            given = ["bucket"] if bucket is not None else []
            raise TypeError(
                f"{owner}() takes either cache= or connection arguments, not both "
                f"(got cache= and {', '.join(given + sorted(options))})"
            )
        if isinstance(cache, AsyncS3Cache):
            return Connection(cache, S3Cache._from_core(cache), owned=False)
        if isinstance(cache, S3Cache):
            return Connection(cache._core, cache, owned=False)
        raise TypeError(f"cache must be an AsyncS3Cache or an S3Cache, not {type(cache).__name__}")
    if bucket is None:
        raise TypeError(f"{owner}() needs a bucket name, or an existing cache as cache=")
    unknown = sorted(set(options) - CORE_OPTIONS)
    if unknown:
        raise TypeError(
            f"{owner}() got unexpected keyword argument(s) {', '.join(unknown)}; besides its own "
            f"it takes AsyncS3Cache's: {', '.join(sorted(CORE_OPTIONS))}"
        )
    core = AsyncS3Cache(bucket, **options)
    return Connection(core, S3Cache._from_core(core), owned=True)


class Connected:
    """What every integration object shares: the cache it uses, and closing it.

    A subclass's constructor calls :meth:`_connect` with its ``bucket``, ``cache`` and the
    remaining keyword arguments (see :func:`connect`).
    """

    _conn: Connection

    def _connect(
        self, bucket: str | None, cache: AsyncS3Cache | S3Cache | None, options: dict[str, Any]
    ) -> None:
        self._conn = connect(type(self).__name__, bucket, cache, options)

    @property
    def cache(self) -> AsyncS3Cache:
        """The :class:`~s3cache.AsyncS3Cache` holding the entries (stats, maintenance)."""
        return self._conn.core

    def close(self) -> None:
        """Close the cache if this object opened it (a ``cache=`` passed in stays open)."""
        self._conn.close()

    async def aclose(self) -> None:
        """:meth:`close` on the caller's event loop."""
        await self._conn.aclose()
