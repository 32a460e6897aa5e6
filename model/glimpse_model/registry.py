"""The model registry in the object store: ``models/<version>/<file>`` and the production alias.

A version id is ``m-`` + the first 16 hex of sha256(image_encoder.onnx ‖ text_encoder.onnx ‖
vocab.json ‖ preprocess.json ‖ config.json); ``checksums.json`` (sha256 of every other file) is
written last, so a version is registered once it is there; ``models/aliases/production.json`` =
``{"version": "<v>"}`` names the model the Ranking service serves.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

HASHED_FILES = ["image_encoder.onnx", "text_encoder.onnx", "vocab.json", "preprocess.json", "config.json"]
ALIAS_KEY = "models/aliases/production.json"


class RegistryError(Exception):
    """A registered version that is missing or does not match its checksums / id."""


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def model_version(folder: Path) -> str:
    h = hashlib.sha256()
    for f in HASHED_FILES:
        h.update((folder / f).read_bytes())
    return "m-" + h.hexdigest()[:16]


def read_alias(store) -> str | None:
    """The production version, or None when nothing is promoted yet."""
    if not store.exists(ALIAS_KEY):
        return None
    version = json.loads(store.get(ALIAS_KEY)).get("version")
    return version if isinstance(version, str) and version else None


ALIAS_HISTORY = 5  # earlier productions the alias remembers (services/ranking/src/registry.ts)


def write_alias(store, version: str) -> None:
    """Points the alias at ``version``; the version it named before goes first in ``previous``
    (Ranking falls back to those while a new production's index is being computed)."""
    previous: list[str] = []
    if store.exists(ALIAS_KEY):
        try:
            doc = json.loads(store.get(ALIAS_KEY))
            previous = [doc.get("version")] + list(doc.get("previous") or [])
        except (ValueError, AttributeError, TypeError):
            previous = []
    previous = [v for v in dict.fromkeys(previous) if isinstance(v, str) and v and v != version][:ALIAS_HISTORY]
    store.put(ALIAS_KEY, json.dumps({"version": version, "previous": previous}).encode(), "application/json")


def fetch_version(store, version: str, dest: Path, files: list[str]) -> Path:
    """Downloads ``files`` of a registered version into ``dest``, each checked against the
    version's checksums.json, and checks the version id: what is evaluated is exactly what
    the registry serves under that name."""
    try:
        sums = json.loads(store.get(f"models/{version}/checksums.json"))
    except Exception as e:
        raise RegistryError(f"{version} is not registered (no checksums.json: {e})") from e
    dest.mkdir(parents=True, exist_ok=True)
    for f in dict.fromkeys(HASHED_FILES + files):
        if f not in sums:
            raise RegistryError(f"{version}: checksums.json lists no {f}")
        data = store.get(f"models/{version}/{f}")
        if hashlib.sha256(data).hexdigest() != sums[f]:
            raise RegistryError(f"{version}: checksum mismatch for {f}")
        (dest / f).write_bytes(data)
    if model_version(dest) != version:
        raise RegistryError(f"{version}: its files define version {model_version(dest)}")
    return dest
