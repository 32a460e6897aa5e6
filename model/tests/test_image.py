"""The trainer image (Dockerfile): its default base carries the torch pyproject.toml pins, and
its pip step installs pyproject.toml's other pins (the one list). The image itself is built
and run by hand or in CI: see "Docker" in model/README.md."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parents[1]
DOCKERFILE = (MODEL_DIR / "Dockerfile").read_text()
DEPS = tomllib.loads((MODEL_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
PINS = dict(d.split("==") for d in DEPS)


def test_default_base_is_the_pinned_torch():
    base = re.search(r"^ARG BASE=(\S+)$", DOCKERFILE, re.M)
    assert base and re.search(r"^FROM \$\{BASE\}$", DOCKERFILE, re.M)
    assert base.group(1).startswith(f"pytorch/pytorch:{PINS['torch']}-"), (base.group(1), PINS["torch"])


def test_pip_step_installs_the_project_pins():
    snippet = re.search(r"^RUN python -c '([^']*)' > /tmp/requirements.txt", DOCKERFILE, re.M)
    assert snippet, "the pip step no longer reads pyproject.toml"
    code = snippet.group(1).replace("/app/pyproject.toml", str(MODEL_DIR / "pyproject.toml"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [d for d in DEPS if d.split("==")[0] not in ("torch", "torchvision")]
    assert "COPY pyproject.toml /app/" in DOCKERFILE


def test_ci_base_script_parses():
    subprocess.run(["bash", "-n", str(MODEL_DIR / "scripts" / "ci-base.sh")], check=True)


def test_the_lock_pins_what_the_image_installs():
    # pyproject.toml's pins are the image's list; uv.lock (what `uv run --frozen` installs for the
    # tests and the local trainer) must hold the same version of each, so both run the same code.
    lock = {p["name"]: p["version"] for p in tomllib.loads((MODEL_DIR / "uv.lock").read_text())["package"]}
    for name, version in PINS.items():
        assert lock.get(name.lower().replace("_", "-")) == version, (name, version, lock.get(name))
