package veto.crm_test

import data.veto.crm

# One call per class-3 deny code; each must produce exactly that code.
deny_cases := {
	"unknown_tool": patched(update, {"tool": "crm.merge"}),
	"unknown_tenant": patched(update, {"context": {"tenantId": "umbrella"}, "arguments": {"tenantId": "umbrella"}}),
	"wrong_tenant": patched(update, {"arguments": {"tenantId": "globex"}}),
	"actor_not_allowed": patched(update, {"context": {"actorId": "agent:rogue"}}),
	"unknown_environment": patched(update, {"context": {"environment": "qa"}}),
	"missing_reason": json.remove(update, ["context/reason"]),
	"blocked_destination": patched(update, {"arguments": {"destination": "https://pastebin.com"}}),
	"destination_not_allowed": patched(update, {
		"context": {"tenantId": "allowlisted"},
		"arguments": {"tenantId": "allowlisted", "destination": "https://other.example"},
	}),
	"amount_over_limit": patched(update, {"arguments": {"amount": 300000}}),
	"no_approver": patched(update, {
		"context": {"tenantId": "initech"},
		"arguments": {"tenantId": "initech", "amount": 1000},
	}),
}

approval_cases := {
	"sensitive_field": patched(update, {"arguments": {"changes": {"ssn": "x"}}}),
	"production_amount": patched(update, {"arguments": {"amount": 9000}}),
}

allow_cases := {"read_only": read, "low_value": update}

test_every_policy_reason_code_has_a_case if {
	policy_codes := {code | some code, entry in crm.reason_codes; entry.source == "policy"}
	covered := ({"invalid_input", "repeated_denies"} | object.keys(deny_cases)) | object.keys(approval_cases)
	policy_codes == covered | object.keys(allow_cases)
}

test_deny_each_code if {
	every code, call in deny_cases {
		verdict(call) == denied({code})
	}
}

test_require_approval_each_code if {
	every code, call in approval_cases {
		decide(call) == needs_approval({code})
	}
}

test_allow_each_code if {
	every code, call in allow_cases {
		decide(call) == allowed(code)
	}
}

# Precedence: each class loses to every class above it.

test_deny_escalated_wins_over_each_deny_code if {
	every call in deny_cases {
		verdict(patched(call, {"history": {"recentDenies": 3}})) == escalated
	}
}

test_deny_escalated_wins_over_approval_and_allow if {
	every call in array.concat([c | some c in approval_cases], [c | some c in allow_cases]) {
		decide(patched(call, {"history": {"recentDenies": 3}})) == escalated
	}
}

test_deny_invalid_input_wins_over_every_class if {
	calls := array.flatten([
		[c | some c in deny_cases],
		[c | some c in approval_cases],
		[c | some c in allow_cases],
	])
	every call in calls {
		broken := patched(call, {"context": {"environment": 7}, "history": {"recentDenies": 9}})
		verdict(broken) == invalid({"context.environment must be a non-empty string"})
	}
}

test_deny_wins_over_approval if {
	call := patched(update, {"arguments": {"tenantId": "globex", "amount": 9000, "changes": {"ssn": "x"}}})
	decide(call) == denied({"wrong_tenant"})
}

test_require_approval_wins_over_allow if {
	decide(patched(read, {"arguments": {"fields": ["tax_id"]}})) == needs_approval({"sensitive_field"})
	decide(patched(update, {"arguments": {"amount": 5000}})) == needs_approval({"production_amount"})
}

test_deny_lists_every_reason_of_its_class_sorted if {
	call := patched(json.remove(update, ["context/reason"]), {
		"context": {"environment": "qa"},
		"arguments": {"tenantId": "globex", "destination": "a@gmail.com", "amount": 300000},
	})
	decide(call) == with_hosts(
		denied({
			"amount_over_limit", "blocked_destination", "missing_reason",
			"unknown_environment", "wrong_tenant",
		}),
		["gmail.com"],
	)
}

test_approvers_only_on_require_approval if {
	every call in array.concat([c | some c in deny_cases], [c | some c in allow_cases]) {
		verdict(call).approvers == []
	}
}

# The shipped data.json: the contract's example call needs approval by acme's owners.
test_require_approval_shipped_data_contract_example if {
	call := patched(update, {"arguments": {"changes": {"stage": "closed_won", "amount": 48000}, "amount": 48000}})
	crm.decision == expect(
		"require_approval", false, {"production_amount", "sensitive_field"},
		["user:crm-owner@acme.example", "user:revops-lead@acme.example"],
	) with input as call
}

# Allow needs positive evidence: were every class empty, the answer is a deny.
test_deny_evaluation_error_when_no_class_has_a_reason if {
	expected := {
		"action": "deny",
		"escalated": false,
		"reasons": [{"code": "evaluation_error", "message": "The policy reached no verdict"}],
		"approvers": [],
	}

	# regal ignore:leaked-internal-reference
	crm.decision == expected with input as update with data.veto.config as fixture with crm._allow as set()
}
