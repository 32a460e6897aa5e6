"""A real mesh for the client's tests: the compiled Glimpse (`node packages/cli/dist/main.js up`,
what `npm start` runs; `npm run build` first) on free ports with API keys, in a temporary data
folder, serving the demo pack. The client talks native gRPC to its gateway."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / "packages" / "cli" / "dist" / "main.js"
WRITE_KEY = "py-client-write-key"
READ_KEY = "py-client-read-key"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory):
    assert CLI.is_file(), f"{CLI} is missing: run `npm run build` first"
    node = shutil.which("node")
    assert node, "node (22+) is not on PATH: source scripts/node.sh"
    gw, r, t, d, rm, tm, dm = map(str, free_ports(7))
    env = {
        **os.environ,
        "GLIMPSE_DATA_DIR": str(tmp_path_factory.mktemp("glimpse-data")),
        "GLIMPSE_GATEWAY_PORT": gw, "GLIMPSE_RANKING_PORT": r, "GLIMPSE_TRAINING_PORT": t, "GLIMPSE_DATA_PORT": d,
        "GLIMPSE_RANKING_METRICS_PORT": rm, "GLIMPSE_TRAINING_METRICS_PORT": tm, "GLIMPSE_DATA_METRICS_PORT": dm,
        "GLIMPSE_API_KEYS": f"{WRITE_KEY}:write,{READ_KEY}:read",
        # Sources (pipeline archives, collection folders) only under the tests' own temporary
        # folder: nothing is fetched from the network, whatever a generated request asks.
        "GLIMPSE_SOURCE_ALLOWLIST": f"file://{tmp_path_factory.getbasetemp()}",
        "GLIMPSE_LOG_LEVEL": "warn",
    }
    proc = subprocess.Popen([node, str(CLI), "up"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            output.append(line)
            if "Glimpse is running" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    while not ready.wait(0.2):
        assert proc.poll() is None, "glimpse up exited:\n" + "".join(output)
        assert time.monotonic() < deadline, "glimpse up did not start in 120 s:\n" + "".join(output)
    try:
        yield f"127.0.0.1:{gw}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
