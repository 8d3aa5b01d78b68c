"""
The python_protect_memory case of `make bench` (bench/run.mjs): the Python
adapter's ``protect()`` with the in-memory store and a sink that keeps the
last records, over the same call mix as protect_memory, timed per call with
time.perf_counter_ns. Prints one JSON object: p50_us, p99_us, ops_per_s, n,
verdicts_per_pass, and build: "compiled" (the wheel of adapter/python/hatch_build.py,
on PYTHONPATH) or "pure".

    python bench/python_protect.py MIX.json BUNDLE [MIN_MS] [MIN_OPS]
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import veto_crm.veto as veto_module
from veto_crm import create_veto


class RingSink:
    """Keeps the last ``size`` records, as bench/cases.mjs RingSink."""

    def __init__(self, size: int = 4096) -> None:
        self.records: list[Any] = [None] * size
        self.size = size
        self.written = 0

    def write(self, record: Any) -> None:
        self.records[self.written % self.size] = record
        self.written += 1


def stepping_clock() -> Any:
    """60 s per decision, as bench/cases.mjs steppingClock."""
    now = [float(1735689600000)]

    def clock() -> float:
        now[0] += 60_000
        return now[0]

    return clock


def main() -> None:
    mix_path, bundle = sys.argv[1], sys.argv[2]
    min_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 1500
    min_ops = int(sys.argv[4]) if len(sys.argv) > 4 else 20_000
    with open(mix_path, encoding="utf-8") as handle:
        calls = json.load(handle)
    veto = create_veto(bundle, record_sink=RingSink(), clock=stepping_clock())
    actions = {"allow": 0, "deny": 0, "require_approval": 0, "escalated": 0, "invalid_input": 0}
    for call in calls:
        d = veto.protect(call)
        actions[d.action] += 1
        if d.escalated:
            actions["escalated"] += 1
        if d.reasons and d.reasons[0].code == "invalid_input":
            actions["invalid_input"] += 1
    for i in range(5000):
        veto.protect(calls[i % len(calls)])
    samples: list[int] = []
    started = time.perf_counter_ns()
    min_ns = min_ms * 1_000_000
    i = 0
    while True:
        t0 = time.perf_counter_ns()
        veto.protect(calls[i])
        t1 = time.perf_counter_ns()
        samples.append(t1 - t0)
        i = (i + 1) % len(calls)
        if len(samples) >= 400_000 or (len(samples) >= min_ops and t1 - started >= min_ns):
            break
    elapsed = time.perf_counter_ns() - started
    veto.close()
    samples.sort()
    n = len(samples)

    def at(q: float) -> float:
        return round(samples[min(n - 1, int(q * n))] / 1000, 2)

    # Which build ran (adapter/python/hatch_build.py): the compiled wheel when PYTHONPATH=.build/pyc.
    compiled = veto_module.__file__ is not None and veto_module.__file__.endswith(".so")
    print(
        json.dumps(
            {
                "p50_us": at(0.5),
                "p99_us": at(0.99),
                "ops_per_s": round(n / (elapsed / 1e9)),
                "n": n,
                "verdicts_per_pass": actions,
                "build": "compiled" if compiled else "pure",
            }
        )
    )


if __name__ == "__main__":
    main()
