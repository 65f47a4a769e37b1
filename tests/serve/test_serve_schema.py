"""schemathesis fuzzes every /api/v1 operation of a live uvicorn (tiny models): no 5xx, responses match the schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serve_fakes import LiveServer, make_app

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance"


def run_schemathesis(
    url: str, max_examples: int, phases: str, tmp_path: Path, timeout_s: int
) -> subprocess.CompletedProcess:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if exe is None:
        pytest.skip("schemathesis is not installed")
    cmd = [
        exe,
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(max_examples),
        "--phases",
        phases,
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--seed",
        "1",
        "--suppress-health-check",
        "all",
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=tmp_path)


def test_schemathesis_finds_no_server_errors(tmp_path):
    with LiveServer(make_app(timeout_s=30)) as server:
        res = run_schemathesis(server.url, max_examples=6, phases="fuzzing", tmp_path=tmp_path, timeout_s=240)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "Tested: 12" in res.stdout and "No issues found" in res.stdout  # 8 + 4 /api/v1/web routes


@pytest.mark.slow
def test_schemathesis_full_run(tmp_path):
    with LiveServer(make_app(timeout_s=60)) as server:
        res = run_schemathesis(
            server.url, max_examples=40, phases="examples,coverage,fuzzing", tmp_path=tmp_path, timeout_s=1200
        )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
