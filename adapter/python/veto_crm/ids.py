"""
Decision ids: ULIDs (26 characters of Crockford base32, 48 bits of
milliseconds then 80 random bits), monotonic within one generator as the
TypeScript adapter's are: an id is never smaller than the one before it, even
within one millisecond or when the clock steps back (the random part of the
last id is incremented instead). Randomness comes from os.urandom in 4 KiB
blocks, as the TypeScript adapter's from crypto.randomFillSync; a forked child
starts a new block.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TIME_LEN = 10
RANDOM_LEN = 16
TIME_MAX = 2**48 - 1


#: Every two characters of the alphabet, by the ten bits they encode.
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]


def encode_time(ms: object) -> str:
    # object: anything else is refused with ValueError here (compiled, an int annotation would raise TypeError first).
    if not isinstance(ms, int) or ms < 0 or ms > TIME_MAX:
        raise ValueError(f"ULID time out of range: {ms}")
    # TIME_LEN (10) characters of five bits each, most significant first, two at a time.
    pairs = _PAIRS
    return pairs[(ms >> 40) & 1023] + pairs[(ms >> 30) & 1023] + pairs[(ms >> 20) & 1023] + pairs[(ms >> 10) & 1023] + pairs[ms & 1023]


#: Random bytes drawn from the OS at a time (os.urandom is a system call; the TypeScript adapter draws 4 KiB blocks too).
POOL_BYTES = 4096
RANDOM_BYTES = 10  # 80 bits: RANDOM_LEN characters of five bits
RANDOM_MAX = 2**80 - 1

#: How many forks made this process (counted in the child): a generator last used in an earlier generation
#: forgets what it drew, so that a forked child draws new randomness instead of its parent's next ids.
#: A counter rather than a registry of generators: the compiled build's classes take no weak references.
_fork_generation = 0
#: Taken by the one thread of a forked child that makes a generator forget (made anew at each fork).
_fork_lock = threading.Lock()


class _MonotonicUlid:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._time = ""
        #: The random part of the last id, as an 80-bit number (incremented within one millisecond).
        self._random = 0
        self._pool = b""
        self._pool_at = 0
        self._generation = _fork_generation

    def _forget(self) -> None:
        """After fork: nothing the parent drew or gave is reused (the same pool would give both processes the same ids)."""
        self._lock = threading.Lock()
        self._last_ms = -1
        self._pool = b""
        self._pool_at = 0
        self._generation = _fork_generation

    def __call__(self, now_ms: float) -> str:
        ms = int(now_ms // 1)
        if self._generation != _fork_generation:
            with _fork_lock:
                if self._generation != _fork_generation:
                    self._forget()
        with self._lock:
            if ms > self._last_ms:
                time = encode_time(ms)
                at = self._pool_at
                pool = self._pool
                if at + RANDOM_BYTES > len(pool):
                    pool = self._pool = os.urandom(POOL_BYTES)
                    at = 0
                self._pool_at = at + RANDOM_BYTES
                r = int.from_bytes(pool[at : at + RANDOM_BYTES], "big")
                self._last_ms = ms
                self._time = time
            else:
                r = self._random + 1
                if r > RANDOM_MAX:
                    raise OverflowError("ULID random part overflowed within one millisecond")
            self._random = r
            pairs = _PAIRS
            # RANDOM_LEN (16) characters of five bits each, most significant first, two at a time.
            return (
                self._time
                + pairs[r >> 70]
                + pairs[(r >> 60) & 1023]
                + pairs[(r >> 50) & 1023]
                + pairs[(r >> 40) & 1023]
                + pairs[(r >> 30) & 1023]
                + pairs[(r >> 20) & 1023]
                + pairs[(r >> 10) & 1023]
                + pairs[r & 1023]
            )


def _after_fork() -> None:
    global _fork_generation, _fork_lock
    _fork_lock = threading.Lock()
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def monotonic_ulid() -> Callable[[float], str]:
    """A function that returns a new ULID for the given time (milliseconds since the epoch); thread-safe."""
    return _MonotonicUlid()
