"""Machine-readable progress events (JSON lines) + an optional human progress bar.

Every event is one JSON object per line on stdout, appended to ``<run_dir>/events.jsonl``
and mirrored to the object store (``runs/<run_name>/events.jsonl`` by default) so the
Training service can show live status.  Common fields: ``event``, ``time`` (ISO-8601 UTC),
``run``; training events add ``phase``, ``epoch``, ``step``, ``loss``, ``lr``,
``throughput`` (samples/s), ``eta_s`` and ``dev`` ({"t2i": {...}, "i2t": {...}, "rsum"}).
"""
from __future__ import annotations

import datetime as _dt
import json
import sys
import time
from pathlib import Path


class EventLog:
    def __init__(self, path: Path, run: str, store=None, store_key: str = "", progress: str = "auto",
                 upload_every_s: float = 15.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.run = run
        self.store = store
        self.store_key = store_key
        self.upload_every_s = upload_every_s
        self._last_upload = 0.0
        self.bar = None
        self.use_bar = progress == "bar" or (progress == "auto" and sys.stderr.isatty())

    def emit(self, event: str, force_upload: bool = False, **fields) -> dict:
        rec = {"event": event, "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
               "run": self.run}
        rec.update(fields)
        line = json.dumps(rec, sort_keys=False, default=float)
        with self.path.open("a") as f:
            f.write(line + "\n")
        if self.bar is not None:
            self.bar.clear()
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if self.bar is not None:
            self.bar.refresh()
        if force_upload or time.time() - self._last_upload > self.upload_every_s:
            self.upload()
        return rec

    def upload(self) -> None:
        if self.store is None or not self.store_key:
            return
        try:
            self.store.put(self.store_key, self.path.read_bytes(), "application/x-ndjson")
            self._last_upload = time.time()
        except Exception as e:  # never kill training because the store hiccups
            sys.stderr.write(f"[events] upload failed: {e}\n")

    # --- human progress bar -------------------------------------------------------------
    def start_bar(self, total: int, desc: str) -> None:
        if not self.use_bar:
            return
        from tqdm import tqdm
        self.close_bar()
        self.bar = tqdm(total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)

    def tick(self, n: int = 1, **postfix) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
