package veto.crm

# recentDenies is computed by the adapter from its store (docs/contract.md §3) and
# passed as _call.history.recentDenies; a missing history counts as zero.

default _recent_denies := 0

_recent_denies := _call.history.recentDenies if _count(_call.history.recentDenies)

_escalate if _recent_denies >= _deny_threshold
