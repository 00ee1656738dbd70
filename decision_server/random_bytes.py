"""Random bytes for decision ids and AES-GCM nonces, drawn from the operating system's CSPRNG in blocks.

Input: how many bytes. Output: that many bytes, never handed out twice. `os.urandom` releases the GIL around its
getrandom(2) call, which under load made each call a switch between a worker's threads, twice a request (the id
and the nonce); a block of 4 KiB is one call per few hundred requests. A forked child starts with an empty pool
(and a fresh lock): gunicorn forks its workers from a parent that may have drawn bytes already, and two workers
handing out the same bytes would mean the same decision id, or a nonce used twice under one key.
"""

from __future__ import annotations

import os
import threading


class RandomBytes:
    """Bytes from the operating system's CSPRNG, fetched 4 KiB at a time (see the module docstring)."""

    BLOCK = 4096

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._used = b"", 0

    def take(self, count: int) -> bytes:
        with self._lock:
            start = self._used
            if start + count > len(self._pool):
                self._pool, start = os.urandom(self.BLOCK), 0
            self._used = start + count
            return self._pool[start : start + count]


random_bytes = RandomBytes()
