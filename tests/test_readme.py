"""Every ```python block of README.md runs against the test server, as a reader would run it.

A block is a complete program unless its first line is ``# Fragment: ...`` (the README's
convention, documented in its Development section). Programs run in a subprocess configured
the way the README tells readers to: ``AWS_ENDPOINT_URL_S3`` names the test server (moto, the
``s3_endpoint`` fixture), the credentials are in ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
no region is set, and every bucket the README names exists. A program must exit 0, write
nothing to stderr (a store failure would be logged there, and so would a ResourceWarning), and
print what its comments say it prints (``print(x)  # {'a': 1}``).

Fragments are compiled (top-level ``await`` allowed). Those in :data:`STUBS` also run, in this
process and with the same environment, given the imports of the README's first examples and
the names their first line says they need; each then checks what the fragment claims. The
others are compiled only: litellm's own S3 cache (the "before" of the switch, not our code).

Optional frameworks: blocks that import litellm carry the ``litellm`` mark and those that
import LangChain or LangGraph the ``langchain`` mark, as in the rest of the suite, so they run
in ``nox -s litellm`` and ``nox -s langchain`` and skip where the framework is missing. The
prometheus_client example runs in ``nox -s tests`` (which installs prometheus-client) and skips
where it is missing. ```bash and ```console blocks are not run here.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import importlib.util
import inspect
import json
import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from s3cache import AsyncS3Cache, LocalTier, S3Cache
from tests.conftest import CREDENTIALS

README = Path(__file__).resolve().parent.parent / "README.md"
FRAGMENT = "# fragment:"
#: Optional frameworks, by a part of the module path a block imports (``litellm``, or
#: ``s3cache.integrations.litellm``, which needs it): the module that must be installed, and
#: the mark of the session that has it.
FRAMEWORKS: dict[str, tuple[str, pytest.MarkDecorator | None]] = {
    "litellm": ("litellm", pytest.mark.litellm),
    "litellm_proxy": ("litellm", pytest.mark.litellm),
    "langchain": ("langchain_core", pytest.mark.langchain),
    "langchain_core": ("langchain_core", pytest.mark.langchain),
    "langchain_classic": ("langchain_classic", pytest.mark.langchain),
    "langgraph": ("langgraph", pytest.mark.langchain),
    "prometheus_client": ("prometheus_client", None),
    "prometheus": ("prometheus_client", None),  # s3cache.telemetry.prometheus
    "opentelemetry": ("opentelemetry.sdk", None),
}
#: The names every fragment may take from the README's first examples.
IMPORTS: dict[str, Any] = {
    "asyncio": asyncio,
    "timedelta": timedelta,
    "AsyncS3Cache": AsyncS3Cache,
    "S3Cache": S3Cache,
    "LocalTier": LocalTier,
}
_BUCKET = re.compile(
    r"""(?:S3Cache|S3LLMCache|S3ByteStore|S3NodeCache)\(\s*"([a-z0-9.-]+)"|s3_bucket_name="([a-z0-9.-]+)\"|from_url\("s3://([a-z0-9.-]+)"""
)


@dataclass(frozen=True, slots=True)
class Block:
    """One ```python block: where it starts, the section it is in, and its code."""

    line: int
    section: str
    index: int  # 1 for the section's first python block
    code: str

    @property
    def name(self) -> str:
        """A stable id: the section's slug and the block's place in it."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-{self.index}"

    @property
    def fragment(self) -> bool:
        return self.code.lstrip().lower().startswith(FRAGMENT)

    @property
    def frameworks(self) -> list[str]:
        """The optional frameworks (keys of :data:`FRAMEWORKS`) this block needs."""
        paths: set[str] = set()
        for node in ast.walk(ast.parse(self.code)):
            if isinstance(node, ast.Import):
                paths.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                paths.add(node.module)
        return sorted({part for path in paths for part in path.split(".")} & set(FRAMEWORKS))


def readme_blocks(text: str) -> list[Block]:
    """The ```python blocks of ``text``, each with the heading it sits under."""
    found: list[Block] = []
    counts: Counter[str] = Counter()
    section = ""
    fence: tuple[int, str, list[str]] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if fence is None:
            if line.startswith("```"):
                fence = (number, line[3:].strip(), [])
            elif line.startswith("#"):
                section = line.lstrip("#").strip()
        elif line.startswith("```"):
            start, language, body = fence
            fence = None
            if language == "python":
                counts[section] += 1
                found.append(Block(start, section, counts[section], "\n".join(body) + "\n"))
        else:
            fence[2].append(line)
    return found


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def _params(blocks: list[Block]) -> list[Any]:
    params = []
    for block in blocks:
        marks = {m.name: m for f in block.frameworks if (m := FRAMEWORKS[f][1]) is not None}
        params.append(pytest.param(block, id=block.name, marks=list(marks.values())))
    return params


def _need_frameworks(block: Block) -> None:
    for module in sorted({FRAMEWORKS[f][0] for f in block.frameworks}):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}, which is not installed here")


def _compile(block: Block) -> Any:
    """The block's code object; fragments may ``await`` at the top level."""
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if block.fragment else 0
    return compile(block.code, f"README.md:{block.line}", "exec", flags=flags, dont_inherit=True)


def _claims(code: str) -> list[str]:
    """What ``print(...)  # <literal>`` lines say they print (a label like ``hits only:`` may
    come first), as ``print`` would write it."""
    claims = []
    for line in code.splitlines():
        if "print(" not in line or "  # " not in line:
            continue
        comment = line.split("  # ", 1)[1].strip()
        for candidate in (comment, comment.split(": ", 1)[-1]):
            try:
                claims.append(str(ast.literal_eval(candidate)))
                break
            except (ValueError, SyntaxError):
                continue
    return claims


@pytest.fixture(scope="module")
def readme_buckets(s3_endpoint: str) -> list[str]:
    """Every bucket the README's examples name, created on the test server."""
    names = sorted({a or b or c for block in BLOCKS for a, b, c in _BUCKET.findall(block.code)})
    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    try:
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for name in names:
            if name not in existing:
                client.create_bucket(Bucket=name)
    finally:
        client.close()
    return names


@pytest.fixture
def reader_env(s3_endpoint: str, readme_buckets: list[str], tmp_path: Path) -> dict[str, str]:
    """The environment the README asks readers to set, and nothing else of AWS's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3CACHE_"))}
    env.update(
        AWS_ENDPOINT_URL_S3=s3_endpoint,
        AWS_ACCESS_KEY_ID=CREDENTIALS["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=CREDENTIALS["aws_secret_access_key"],
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # litellm must not fetch its cost map
    )
    return env


# -- every block ------------------------------------------------------------------------------


def test_the_readme_has_python_blocks_of_both_kinds() -> None:
    assert len(BLOCKS) >= 15
    assert any(b.fragment for b in BLOCKS)
    assert len({b.name for b in BLOCKS}) == len(BLOCKS)


def test_the_first_example_is_a_complete_program() -> None:
    first = BLOCKS[0]
    assert not first.fragment
    _compile(first)  # no top-level await or async with: it compiles as a plain module
    assert "asyncio.run(" in first.code


@pytest.mark.parametrize("block", _params(BLOCKS))
def test_every_block_compiles(block: Block) -> None:
    _compile(block)


@pytest.mark.parametrize("block", _params([b for b in BLOCKS if not b.fragment]))
def test_program_runs(block: Block, reader_env: dict[str, str], tmp_path: Path) -> None:
    """Pasted into a file and run, with only the README's environment variables set."""
    _need_frameworks(block)
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "default::ResourceWarning", str(script)],
        env=reader_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    printed = done.stdout.splitlines()
    for claim in _claims(block.code):
        assert claim in printed, (claim, done.stdout)


# -- fragments --------------------------------------------------------------------------------

#: Runs a fragment with the given names on top of :data:`IMPORTS`; returns its namespace.
Run = Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


async def beyond_get_set(cache: AsyncS3Cache, run: Run) -> None:
    loaded: list[int] = []

    def load_user(user_id: int) -> dict[str, int]:
        loaded.append(user_id)
        return {"id": user_id}

    names = await run({"cache": cache, "load_user": load_user})
    assert names["user"] == {"id": 42}
    assert loaded == [42]
    assert await cache.get("lock:nightly-job") == {"host": "worker-3"}  # add() stored it
    assert isinstance(names["cache"], AsyncS3Cache)  # the later lines build other caches


async def fleet(cache: AsyncS3Cache, run: Run) -> None:
    asked: list[int] = []
    tokens: list[int] = []

    async def ask_the_model() -> str:
        asked.append(1)
        return "an answer"

    async def build_report(*, fencing_token: int) -> None:
        tokens.append(fencing_token)

    names = await run(
        {
            "cache": cache,
            "prompt_key": "chat:readme",
            "ask_the_model": ask_the_model,
            "build_report": build_report,
        }
    )
    assert names["answer"] == "an answer"
    assert asked == [1]
    assert len(tokens) == 1
    assert tokens[0] > 0


async def memoise(cache: AsyncS3Cache, run: Run) -> None:
    calls: list[str] = []

    async def embed(text: str, model: str) -> list[float]:
        calls.append(text)
        return [float(len(text)), 0.5]

    names = await run({"hashlib": hashlib, "provider": SimpleNamespace(embed=embed)})
    async with names["cache"] as own:
        assert await names["embed"]("hello") == [5.0, 0.5]
        assert await names["embed"]("hello") == [5.0, 0.5]
        assert calls == ["hello"]
        assert own.stats().error_count == 0


async def once_per_interval(cache: AsyncS3Cache, run: Run) -> None:
    runs: list[int] = []

    async def build_nightly_report() -> None:
        runs.append(1)

    names = {"cache": cache, "socket": socket, "build_nightly_report": build_nightly_report}
    await run(names)
    await run(names)  # the second add() finds a live entry: the job does not run again
    assert runs == [1]


async def one_llm_call(cache: AsyncS3Cache, run: Run) -> None:
    calls: list[str] = []

    async def create(**request: Any) -> Any:  # model=, messages=, timeout=
        calls.append(request["model"])
        await asyncio.sleep(0.05)
        return SimpleNamespace(model_dump=lambda: {"choices": [{"text": "hi"}]})

    client = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=create)))
    names = await run({"hashlib": hashlib, "json": json, "client": client})
    async with names["cache"] as own:
        messages = [{"role": "user", "content": "hello"}]
        answers = await asyncio.gather(*(names["complete"]("m", messages) for _ in range(3)))
        assert answers == [{"choices": [{"text": "hi"}]}] * 3
        assert calls == ["m"]
        assert own.stats().error_count == 0


async def cached_embeddings(cache: AsyncS3Cache, run: Run) -> None:
    from langchain_core.embeddings import Embeddings as Base

    embedded: list[str] = []

    class Embeddings(Base):
        """A fake embedder without numpy (langchain-core's fakes need it): four floats a text."""

        model = "fake-model"

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            embedded.extend(texts)
            return [self.embed_query(text) for text in texts]

        def embed_query(self, text: str) -> list[float]:
            digest = hashlib.sha256(text.encode()).digest()
            return [byte / 255 for byte in digest[:4]]

    names = await run({"underlying_embeddings": Embeddings()})
    try:
        first = await asyncio.to_thread(names["embeddings"].embed_documents, ["a", "b"])
        again = await asyncio.to_thread(names["embeddings"].embed_documents, ["a", "b"])
        assert first == again
        assert embedded == ["a", "b"]
    finally:
        await asyncio.to_thread(names["store"].close)


async def node_cache(cache: AsyncS3Cache, run: Run) -> None:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        question: str

    retrieved: list[str] = []

    def retrieve(state: State) -> State:
        retrieved.append(state["question"])
        return {"question": state["question"]}

    builder = StateGraph(State)
    builder.add_edge(START, "retrieve")
    builder.add_edge("retrieve", END)

    def fragment() -> dict[str, Any]:
        return asyncio.run(run({"builder": builder, "retrieve": retrieve}))

    names = await asyncio.to_thread(fragment)  # graph.invoke is sync: as in a script
    graph = names["graph"]
    try:
        assert retrieved == ["..."]
        await asyncio.to_thread(graph.invoke, {"question": "..."})  # the cache was cleared
        await asyncio.to_thread(graph.invoke, {"question": "..."})  # a hit: not run again
        assert retrieved == ["...", "..."]
    finally:
        await asyncio.to_thread(graph.cache.close)


async def maintenance_api(cache: AsyncS3Cache, run: Run) -> None:
    await run({})  # doctor, purge, scan and a lifecycle rule on the prefix "llm"


#: The fragments that run, by block name, each with the names it needs and a check after.
STUBS: dict[str, Callable[[AsyncS3Cache, Run], Awaitable[None]]] = {
    "beyond-get-set-1": beyond_get_set,
    "fleet-wide-single-flight-and-locks-1": fleet,
    "recipes-1": memoise,
    "recipes-2": once_per_interval,
    "recipes-3": one_llm_call,
    "using-s3cache-with-langchain-2": cached_embeddings,
    "using-s3cache-with-langgraph-1": node_cache,
    "command-line-1": maintenance_api,
}
FRAGMENTS = [b for b in BLOCKS if b.fragment]


def test_every_stub_names_a_fragment() -> None:
    assert set(STUBS) <= {b.name for b in FRAGMENTS}


@pytest.fixture
def reader_environ(reader_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """:func:`reader_env` in this process (for the fragments that run here)."""
    for name in [k for k in os.environ if k.startswith(("AWS_", "S3CACHE_"))]:
        monkeypatch.delenv(name)
    for name, value in reader_env.items():
        monkeypatch.setenv(name, value)
    return reader_env


@pytest.mark.parametrize("block", _params([b for b in FRAGMENTS if b.name in STUBS]))
async def test_fragment_runs_with_stubs(block: Block, reader_environ: dict[str, str]) -> None:
    _need_frameworks(block)
    code = _compile(block)

    async def run(names: dict[str, Any]) -> dict[str, Any]:
        namespace = {"__name__": "readme", **IMPORTS, **names}
        result = eval(code, namespace)  # the README's own code
        if inspect.iscoroutine(result):
            await result
        return namespace

    prefix = f"readme/{block.name}"
    async with AsyncS3Cache("my-cache-bucket", prefix=prefix, on_error="raise") as cache:
        await STUBS[block.name](cache, run)
        assert cache.stats().error_count == 0
