"""Generates the Glimpse messages and gRPC stubs under src/glimpse/ from ../../proto.

    cd clients/python && uv run python generate.py            # write them
    cd clients/python && uv run python generate.py --check    # fail when the committed ones are stale

buf builds the protos into one descriptor set; the request rules (buf.validate) and the HTTP and
access annotations are dropped from it first — the servers enforce them, and their Python
modules would clash with other packages' copies — then grpcio-tools' protoc writes *_pb2.py,
*_pb2.pyi and *_pb2_grpc.py from what is left. Method options such as idempotency_level stay.
"""
from __future__ import annotations

import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "src"
# Files the client does without: rule and annotation definitions (see above).
DROPPED = ("buf/validate/", "google/api/", "glimpse/api/v1/rules.proto", "glimpse/api/v1/annotations.proto")


def descriptor_set(tmp: Path) -> tuple[Path, list[str]]:
    raw = tmp / "all.binpb"
    subprocess.run(["npx", "buf", "build", "proto", "--exclude-source-info", "-o", str(raw)], cwd=ROOT, check=True)
    fds = descriptor_pb2.FileDescriptorSet.FromString(raw.read_bytes())
    kept = descriptor_pb2.FileDescriptorSet()
    for f in fds.file:
        if f.name.startswith(DROPPED) or f.name.startswith("grpc/"):
            continue
        deps = [d for d in f.dependency if not d.startswith(DROPPED)]
        del f.dependency[:]
        f.dependency.extend(deps)
        del f.public_dependency[:]
        f.DiscardUnknownFields()  # the dropped files' options, unknown to this pool
        kept.file.append(f)
    out = tmp / "client.binpb"
    out.write_bytes(kept.SerializeToString())
    return out, [f.name for f in kept.file if f.name.startswith("glimpse/")]


def generate(into: Path) -> None:
    with tempfile.TemporaryDirectory() as t:
        fds, files = descriptor_set(Path(t))
        into.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={fds}",
             f"--python_out={into}", f"--pyi_out={into}", f"--grpc_python_out={into}", *files],
            check=True,
        )


def generated(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*_pb2*.py*"))


def main() -> int:
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as t:
            generate(Path(t))
            fresh, have = generated(Path(t)), generated(OUT)
            stale = [str(p) for p in fresh if p not in have or not filecmp.cmp(Path(t) / p, OUT / p, shallow=False)]
            stale += [str(p) for p in have if p not in fresh]
        if stale:
            print("stale generated code (run: uv run python generate.py):", *stale, sep="\n  ", file=sys.stderr)
            return 1
        print("generated code is up to date")
        return 0
    for p in generated(OUT):
        (OUT / p).unlink()
    generate(OUT)
    print(f"wrote {len(generated(OUT))} files under {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
