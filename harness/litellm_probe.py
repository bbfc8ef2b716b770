"""A litellm proxy callback for tests: response headers say which worker answered, on what backend.

Listed after s3cache's line in a test config's ``callbacks``, it lets a test see that every worker
of a multi-worker proxy served requests, and which class each worker's ``litellm.cache`` holds.
"""

from __future__ import annotations

import os
from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger

#: Response headers added to every proxied LLM call.
WORKER_HEADER = "x-test-worker-pid"
BACKEND_HEADER = "x-test-cache-backend"


class WorkerProbe(CustomLogger):
    """Adds the worker's pid and its cache backend's class name to each LLM response."""

    async def async_post_call_response_headers_hook(
        self, *args: Any, **kwargs: Any
    ) -> dict[str, str]:
        """The proxy merges what this returns into the response headers."""
        backend = getattr(litellm.cache, "cache", None)
        return {WORKER_HEADER: str(os.getpid()), BACKEND_HEADER: type(backend).__name__}


probe = WorkerProbe()
