"""A stand-in worker class for the local actor tests, in a module light to import (each worker process imports
it)."""
from __future__ import annotations

import os
import time


class Counter:
    """A stand-in worker: keeps state between calls, reads data the driver put, can raise or die."""

    def __init__(self, start: int):
        self.total = start

    def add(self, amount: int) -> int:
        self.total += amount
        return self.total

    def length(self, data: list) -> int:
        return len(self.fetch(data[0]))

    def fail(self) -> None:
        raise ValueError("bad amount")

    def die(self) -> None:
        os._exit(3)

    def pid(self) -> int:
        return os.getpid()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
