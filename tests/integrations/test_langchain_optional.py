"""LangChain and LangGraph stay optional: ``import s3cache`` never loads them, and the
integration modules name the extra to install when their framework is missing.

These run in every session (no marker), each in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("langchain_core", "langchain_classic", "langgraph")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_s3cache_never_imports_the_frameworks() -> None:
    done = run_python(
        "import sys, s3cache, s3cache.integrations, s3cache.integrations._connect\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [("langchain", "langchain_core", "langchain"), ("langgraph", "langgraph", "langgraph")],
)
def test_a_missing_framework_names_the_extra(module: str, hidden: str, extra: str) -> None:
    done = run_python(
        f"import sys; sys.modules[{hidden!r}] = None\nimport s3cache.integrations.{module}"
    )
    assert done.returncode != 0
    assert f"pip install 's3cache-async[{extra}]'" in done.stderr
