package veto.crm

# A tool is known only with a kind of "read" or "write": anything else in the
# data document (a typo, a missing kind) denies, never allows.

_kind := kind if {
	kind := _tools[_call.tool].kind
	_known_kind(kind)
}

_write if _kind == "write"

_deny contains "unknown_tool" if not _kind

_allow contains "read_only" if _kind == "read"

_allow contains "low_value" if _write

# Two definitions rather than `kind in {"read", "write"}`: the WASM evaluator
# would build that set for each call.
_known_kind("read")

_known_kind("write")
