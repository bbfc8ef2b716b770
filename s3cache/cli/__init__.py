"""The ``s3cache`` command line: check, inspect and clean a cache bucket.

The top layer: it parses arguments, builds an :class:`~s3cache.AsyncS3Cache`, runs one command
with ``asyncio.run`` and prints. The commands are described once in
:mod:`s3cache.cli._commands`; the operations themselves live in the cache and in
:mod:`s3cache.maintenance`. Tables and progress bars use ``rich`` when it is installed
(``pip install s3cache-async[cli]``) and plain text otherwise, or with ``--plain`` /
``S3CACHE_PLAIN=1``. Exit statuses follow grep: 0 found or done, 1 missing, 2 error; 130 for
Ctrl-C.
"""

from __future__ import annotations

from s3cache.cli._main import main
from s3cache.cli._parser import build_parser, version
from s3cache.cli._spec import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_MISSING, EXIT_OK
from s3cache.cli._ui import UI, plural

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING",
    "EXIT_OK",
    "UI",
    "build_parser",
    "main",
    "plural",
    "version",
]
