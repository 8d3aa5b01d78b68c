package veto.crm

# METADATA
# title: Decision
# description: >-
#   The verdict for one proposed tool call, by the contract's precedence: the
#   first class with at least one reason wins and `reasons` lists every reason
#   of that class, sorted by code. Anything the rules below do not reach is a
#   deny: allow needs positive evidence (a known read or write tool). A call
#   with a destination also gets `destination_hosts`: every host the policy
#   read in it, sorted (docs/contract.md §4b).
# entrypoint: true
default decision := {
	"action": "deny",
	"escalated": false,
	"reasons": [{"code": "evaluation_error", "message": "The policy reached no verdict"}],
	"approvers": [],
}

decision := _answer("deny", false, {"invalid_input"}, []) if {
	count(_problems) > 0
} else := _answer("deny", true, {"repeated_denies"}, []) if {
	_escalate
} else := _answer("deny", false, _deny, []) if {
	count(_deny) > 0
} else := _answer("require_approval", false, _approval, _approvers) if {
	count(_approval) > 0
} else := _answer("allow", false, _allow, []) if {
	count(_allow) > 0
}

# Only the reasons an answer reports get a message, and a call without a
# destination builds its answer directly: on the WASM evaluator every rule a
# decision reads is evaluated again for each call, so nothing is built that the
# answer does not show (docs/contract.md §4b for destination_hosts).
_answer(action, escalated, codes, approvers) := {
	"action": action,
	"escalated": escalated,
	"reasons": _reasons(codes),
	"approvers": approvers,
} if {
	not _has_destination
} else := {
	"action": action,
	"escalated": escalated,
	"reasons": _reasons(codes),
	"approvers": approvers,
	"destination_hosts": sort(_destination_hosts),
}

_reasons(codes) := [{"code": code, "message": _message(code)} | some code in sort(codes)]

_message("invalid_input") := concat("", [reason_codes.invalid_input.message, ": ", concat("; ", sort(_problems))])

_message(code) := reason_codes[code].message if code != "invalid_input"
