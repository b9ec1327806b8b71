"""Content-addressed store of trained reference models (Original, Retrain).

A key hashes everything that determines the weights: task, split hash, backbone and head, pretrained
file, recipe, training set role and seed. Each entry is `<key>.pt` (a state dict, loaded with
`weights_only=True`) plus `<key>.json` (the record: what it is and how long it took to train).
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from mubench.core.config import stable_hash

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


class ModelCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def key(self, fields: dict) -> str:
        return stable_hash({"format": CACHE_FORMAT, **fields}, length=32)

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    def load(self, key: str, model: nn.Module) -> dict | None:
        """Fill `model` from the cache and return its record, or None on a miss or a corrupt entry."""
        weights, record_path = self.paths(key)
        if not weights.exists() or not record_path.exists():
            return None
        try:
            record = json.loads(record_path.read_text())
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except Exception as exc:  # a corrupt entry of any kind is retrained, never trusted
            log.warning("cache entry %s is corrupt (%s: %s); retraining it", weights, type(exc).__name__, exc)
            for path in (weights, record_path):
                path.unlink(missing_ok=True)
            return None
        return record

    def save(self, key: str, model: nn.Module, record: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        weights, record_path = self.paths(key)
        _atomic_write(weights, lambda f: torch.save({k: v.cpu() for k, v in model.state_dict().items()}, f))
        _atomic_write(record_path, lambda f: f.write(json.dumps(record, indent=2, sort_keys=True).encode()))

    def get_or_train(self, fields: dict, model: nn.Module, train: Callable[[nn.Module], float]) -> tuple[dict, bool]:
        """Load `model` from the cache or train it with `train(model) -> seconds`; return (record, hit)."""
        key = self.key(fields)
        with self._lock(key):
            self._remove_stale_writes(key)
            record = self.load(key, model)
            if record is not None:
                return record, True
            seconds = train(model)
            record = {"key": key, **fields, "train_seconds": seconds, "created_at": time.time()}
            self.save(key, model, record)
            return record, False

    def _remove_stale_writes(self, key: str) -> None:
        """Half-written files of this entry left by a process killed while saving it. Only the holder of the entry's
        lock writes them, so under the lock any that exist are stale."""
        for path in (*self.root.glob(f"{key}.pt*.tmp"), *self.root.glob(f"{key}.json*.tmp")):
            log.info("removing %s, left by a save that did not finish", path)
            path.unlink(missing_ok=True)

    @contextmanager
    def _lock(self, key: str):
        """One trainer per entry, across processes sharing the cache folder."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, write: Callable) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
