"""
Decision ids: ULIDs (26 characters of Crockford base32, 48 bits of
milliseconds then 80 random bits), monotonic within one generator as the
TypeScript adapter's are: an id is never smaller than the one before it, even
within one millisecond or when the clock steps back (the random part of the
last id is incremented instead).
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


def encode_time(ms: int) -> str:
    if not isinstance(ms, int) or ms < 0 or ms > TIME_MAX:
        raise ValueError(f"ULID time out of range: {ms}")
    # TIME_LEN (10) characters of five bits each, most significant first, two at a time.
    pairs = _PAIRS
    return pairs[(ms >> 40) & 1023] + pairs[(ms >> 30) & 1023] + pairs[(ms >> 20) & 1023] + pairs[(ms >> 10) & 1023] + pairs[ms & 1023]


class _MonotonicUlid:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._time = ""
        self._digits = [0] * RANDOM_LEN

    def __call__(self, now_ms: float) -> str:
        ms = int(now_ms // 1)
        with self._lock:
            digits = self._digits
            if ms > self._last_ms:
                self._last_ms = ms
                self._time = encode_time(ms)
                # 256 is a multiple of 32: the low five bits of a uniform byte are uniform.
                digits[:] = [b & 31 for b in os.urandom(RANDOM_LEN)]
            else:
                for i in range(RANDOM_LEN - 1, -1, -1):
                    if digits[i] < 31:
                        digits[i] += 1
                        break
                    digits[i] = 0
                else:
                    raise OverflowError("ULID random part overflowed within one millisecond")
            return self._time + "".join([ALPHABET[d] for d in digits])


def monotonic_ulid() -> Callable[[float], str]:
    """A function that returns a new ULID for the given time (milliseconds since the epoch); thread-safe."""
    return _MonotonicUlid()
