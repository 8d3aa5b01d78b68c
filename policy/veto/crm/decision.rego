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

decision := _answer("deny", false, {"invalid_input"}, [], _messages) if {
	count(_problems) > 0
} else := _answer("deny", true, {"repeated_denies"}, [], _messages) if {
	_escalate
} else := _answer("deny", false, _deny, [], _messages) if {
	count(_deny) > 0
} else := _answer("require_approval", false, _approval, _approvers, _messages) if {
	count(_approval) > 0
} else := _answer("allow", false, _allow, [], _messages) if {
	count(_allow) > 0
}

_answer(action, escalated, codes, approvers, messages) := object.union(
	{
		"action": action,
		"escalated": escalated,
		"reasons": [{"code": code, "message": messages[code]} | some code in sort(codes)],
		"approvers": approvers,
	},
	_destination_answer,
)

_messages[code] := entry.message if {
	some code, entry in reason_codes
	code != "invalid_input"
}

_messages["invalid_input"] := concat("", [reason_codes.invalid_input.message, ": ", concat("; ", sort(_problems))])
