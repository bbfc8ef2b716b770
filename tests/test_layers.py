"""The package's structure, held as data: every module in its layer, imports pointing down only,
no import circles, modules and functions kept small, no optional framework imported at import.

Pure (no server): each module of ``s3cache/`` is parsed with :mod:`ast`. Later work is held to
this test: a new module goes into :data:`LAYERS` with the layer of its job (see the README's
"Development" section).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

PACKAGE: Final = Path(__file__).resolve().parent.parent / "s3cache"

#: 1 storage format (pure, sans-IO) -> 2 transport -> 3 core -> 4 sync facade -> 5 on top.
#: A module imports only from its own layer or the ones below.
LAYERS: Final[dict[str, int]] = {
    # 1. Storage format and other pure parts: no I/O, no asyncio.
    "s3cache.errors": 1,
    "s3cache._format": 1,
    "s3cache._keys": 1,
    "s3cache._expiry": 1,
    "s3cache._compression": 1,
    "s3cache._lease": 1,
    "s3cache._nonce": 1,
    "s3cache._signing": 1,
    "s3cache._callkey": 1,
    "s3cache._batch": 1,
    "s3cache._options": 1,
    "s3cache._bucket_options": 1,
    "s3cache._settings": 1,
    "s3cache._parameters": 1,
    "s3cache._signatures": 1,  # a forwarding wrapper takes what it wraps's parameters
    "s3cache._metadata": 1,  # user metadata: the x-amz-meta- prefix, one home
    "s3cache._local": 1,
    "s3cache._stats": 1,
    "s3cache._freshness": 1,
    "s3cache._breaker": 1,  # a policy, no I/O: below _freshness, which names its error
    "s3cache._last_seen": 1,  # issue 23: the newest value seen per key, for stale_if_error
    "s3cache._tags": 1,
    "s3cache._durations": 1,
    "s3cache._numbers": 1,  # whole-number options, checked in one place
    "s3cache._url": 1,
    "s3cache._config_errors": 1,
    "s3cache._pricing": 1,
    "s3cache._layout": 1,
    "s3cache._entries": 1,
    "s3cache._disabling": 1,  # issue 26: cache.disabled(), a ContextVar
    "s3cache._serializers": 1,  # issue 26: serializer="json"|"pickle"|"msgpack"|object
    # 2. Transport: requests, clients, retries, error translation.
    "s3cache._pacing": 2,  # a policy, no I/O: the transport's pacing on SlowDown
    "s3cache._paced": 2,  # the pacer wired into sending (both paths)
    "s3cache._sigv4": 2,
    "s3cache._clock": 2,
    "s3cache._redact": 2,
    "s3cache._http11": 2,
    "s3cache._http_head": 2,
    "s3cache._http_pool": 2,
    "s3cache._wire": 2,
    "s3cache._route": 2,
    "s3cache._refusal": 2,
    "s3cache._policy": 2,
    "s3cache._concurrency": 2,
    "s3cache._reply": 2,
    "s3cache._rules": 2,
    "s3cache._client": 2,
    "s3cache._metering": 2,
    "s3cache._send": 2,
    "s3cache._transport": 2,
    "s3cache._admin": 2,
    # 3. Core: the cache and its parts.
    "s3cache._flight": 3,
    "s3cache._capabilities": 3,
    "s3cache._sinks": 3,
    "s3cache._operation": 3,  # one operation being recorded (the recorder's Op)
    "s3cache._recorder": 3,
    "s3cache._coherence": 3,
    "s3cache._parts": 3,
    "s3cache._reads": 3,
    "s3cache._writes": 3,
    "s3cache._removal": 3,
    "s3cache._check": 3,
    "s3cache._fleet": 3,
    "s3cache._refresh": 3,  # issue 23: background refreshes of stale entries
    "s3cache._tagging": 3,  # issue 24: tag checks of reads, invalidate
    "s3cache._habits": 3,  # issue 26: aiocache/cashews conveniences, a mixin of the core
    "s3cache._probing": 3,  # check(), capabilities(), supports_*: a mixin of the core
    "s3cache._core": 3,
    # 4. The private loop and the sync facade.
    "s3cache._loop": 4,
    "s3cache._sync": 4,
    # 5. On top: the public package, maintenance, the command line, integrations.
    "s3cache": 5,
    "s3cache.__main__": 5,
    "s3cache.telemetry": 5,
    "s3cache.telemetry.prometheus": 5,
    "s3cache.maintenance": 5,
    "s3cache.maintenance._doctor": 5,
    "s3cache.maintenance._lifecycle": 5,
    "s3cache.maintenance._purge": 5,
    "s3cache.maintenance._scan": 5,
    "s3cache.maintenance._tag_records": 5,
    "s3cache.cli": 5,
    "s3cache.cli._commands": 5,
    "s3cache.cli._entries": 5,
    "s3cache.cli._lifecycle": 5,
    "s3cache.cli._main": 5,
    "s3cache.cli._parser": 5,
    "s3cache.cli._prefix": 5,
    "s3cache.cli._spec": 5,
    "s3cache.cli._tags": 5,
    "s3cache.cli._types": 5,
    "s3cache.cli._ui": 5,
    "s3cache.cli._values": 5,
    "s3cache.integrations": 5,
    "s3cache.integrations._connect": 5,
    "s3cache.integrations._keys": 5,
    "s3cache.integrations.langchain": 5,
    "s3cache.integrations.langgraph": 5,
    "s3cache.integrations.litellm": 5,
    "s3cache.integrations.litellm_proxy": 5,
}
MAX_MODULE_LINES: Final = 500
MAX_FUNCTION_LINES: Final = 60
#: Modules allowed past :data:`MAX_MODULE_LINES` for now, each with the work that splits it.
KNOWN_LONG_MODULES: Final[dict[str, str]] = {}
#: Frameworks s3cache works with but never imports when it is imported.
OPTIONAL: Final = (
    "litellm",
    "langchain",
    "langchain_core",
    "langchain_community",
    "langgraph",
    "opentelemetry",
    "prometheus_client",
    "msgpack",
    "uvloop",
    "rich",
)
#: Each integration imports its own framework (and what that framework imports), nothing more.
INTEGRATIONS: Final = {
    "s3cache.integrations.litellm": "litellm",
    "s3cache.integrations.litellm_proxy": "litellm",
    "s3cache.integrations.langchain": "langchain_core.caches",
    "s3cache.integrations.langgraph": "langgraph.cache.base",
}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["s3cache", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES: Final = _modules()


def _imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """The package modules ``name`` imports (at import time, under TYPE_CHECKING or in a
    function alike), each with its line."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield from _known(submodule if submodule in MODULES else base, node.lineno)


def _known(name: str, line: int) -> Iterator[tuple[str, int]]:
    """``name`` (or the package module holding it) when it is part of s3cache."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    if name.startswith("s3cache"):
        yield name, line


GRAPH: Final = {name: sorted(set(_imports(name, path))) for name, path in MODULES.items()}


def test_every_module_has_a_layer() -> None:
    missing = sorted(set(MODULES) - set(LAYERS))
    assert not missing, (
        f"add {missing} to LAYERS in tests/test_layers.py, in the layer of its job "
        "(see the README's Development section)"
    )
    gone = sorted(set(LAYERS) - set(MODULES))
    assert not gone, f"{gone} no longer exist: remove them from LAYERS"


def test_imports_point_down_only() -> None:
    upward = [
        f"{name}:{line} imports {target} (layer {LAYERS[target]} above {LAYERS[name]})"
        for name, edges in GRAPH.items()
        for target, line in edges
        if name in LAYERS and target in LAYERS and LAYERS[target] > LAYERS[name]
    ]
    assert not upward, "\n".join(upward)


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in GRAPH[node]:
            if target == node:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    assert _cycles() == []


def test_modules_are_small() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert set(long) <= set(KNOWN_LONG_MODULES), {
        n: f"{lines} lines, over {MAX_MODULE_LINES}: it holds two jobs"
        for n, lines in long.items()
        if n not in KNOWN_LONG_MODULES
    }


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines after its signature: docstring and body (a constructor's long
    parameter list is a declaration, not logic)."""
    assert node.end_lineno is not None
    return node.end_lineno - node.body[0].lineno + 1


def test_functions_are_short() -> None:
    long = [
        f"{name}:{node.lineno} {node.name}: {lines} lines"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (lines := _body_lines(node)) > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


def _loaded(code: str) -> list[str]:
    """The optional frameworks loaded once ``code`` has run in a fresh interpreter."""
    probe = (
        f"import sys\n{code}\n"
        "import json\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return [n for n in json.loads(done.stdout.splitlines()[-1]) if n in OPTIONAL]


def test_importing_s3cache_loads_no_optional_framework() -> None:
    plain = [
        n for n in MODULES if not n.startswith("s3cache.integrations.") and n != "s3cache.__main__"
    ]
    assert _loaded("\n".join(f"import {n}" for n in plain)) == []


@pytest.mark.parametrize("module", sorted(INTEGRATIONS))
def test_an_integration_loads_only_its_own_framework(module: str) -> None:
    framework = INTEGRATIONS[module]
    try:
        own = set(_loaded(f"import {framework}"))
    except subprocess.CalledProcessError:
        pytest.skip(f"{framework} is not installed")
    assert set(_loaded(f"import {module}")) <= own


def test_every_constructor_parameter_is_documented() -> None:
    """``AsyncS3Cache``'s docstring (built from ``s3cache._parameters``) names every parameter."""
    import inspect

    from s3cache import AsyncS3Cache, S3Cache

    doc = AsyncS3Cache.__doc__ or ""
    names = list(inspect.signature(AsyncS3Cache).parameters)
    missing = [name for name in names if f"\n        {name}: " not in doc]
    assert not missing, f"undocumented constructor parameters: {missing}"
    assert "{parameters}" not in doc
    assert list(inspect.signature(S3Cache).parameters) == names
