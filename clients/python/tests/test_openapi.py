"""Property-based API test from the OpenAPI document (schemathesis): every REST operation the
gateway's /openapi.json names is called with generated requests — within and outside the
documented constraints, and in sequences (its stateful phase) — and must answer without a 5xx,
with the status codes, content type and body schema the document gives. No API key: writes are
refused (401) and must still answer with the documented error body; reads run in full. The
earlier hand-written fuzz test (services/gateway/src/fuzz.test.ts) stays."""
from __future__ import annotations

import json
import subprocess
import urllib.request
import sys
from pathlib import Path

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def test_every_operation_conforms_to_the_openapi_document(mesh: str, tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(  # in tmp_path: its example database stays out of the checkout
        [str(cli), "run", f"http://{mesh}/openapi.json", "--checks", CHECKS, "--max-examples", "25", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report  # schemathesis exits non-zero on any failed check
    with urllib.request.urlopen(f"http://{mesh}/openapi.json") as res:
        ops = sum(len(methods) for methods in json.load(res)["paths"].values())
    assert f"{ops} selected / {ops} total" in report, report
    assert report.count(f"✅ {ops} passed") >= 2, report  # the coverage and fuzzing phases, every operation
