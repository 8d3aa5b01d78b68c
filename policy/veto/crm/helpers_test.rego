package veto.crm_test

import data.veto.crm

# A fixed configuration for the tests, independent of the shipped data.json, so
# a security team can change data.json without breaking the policy's tests.
fixture := {
	"tools": {
		"crm.read": {"kind": "read"},
		"crm.search": {"kind": "read"},
		"crm.update": {"kind": "write"},
		"crm.export": {"kind": "write"},
		"crm.admin": {"kind": "admin"},
		"crm.nokind": {},
	},
	"environments": ["production", "staging", "development"],
	"tenants": {
		"acme": {
			"actors": ["agent:sales-assistant", "agent:support"],
			"approvers": ["user:owner@acme.example", "user:revops@acme.example"],
			"approval_threshold": 5000,
			"max_amount": 250000,
		},
		"globex": {"approvers": ["agent:self-approver", "user:admin@globex.example"]},
		"initech": {"approvers": [], "approval_threshold": 1000},
		"selfco": {"approvers": ["agent:self-approver"], "approval_threshold": 1000},
		"noapprovers": {"approval_threshold": 1000},
		"malformed": {"actors": "agent:sales-assistant", "approvers": ["user:a@malformed.example"]},
		"strict": {"approvers": ["user:a@strict.example"], "approval_threshold": "5000", "max_amount": "10"},
		"allowlisted": {
			"approvers": ["user:a@allowlisted.example"],
			"allowed_destinations": [
				"hooks.example.com", " Example.ORG. ", "[0:0::1]", "10.0.0.1",
				"files.example.net:8443", "", "*.wild.example", "10.1",
			],
		},
		"allowlisted_malformed": {"allowed_destinations": ["hooks.example.com", 7]},
		"allowlisted_not_a_list": {"allowed_destinations": "hooks.example.com"},
		"allowlisted_empty": {"allowed_destinations": []},
	},
	"sensitive_fields": {
		"*": ["ssn", "tax_id"],
		"account": ["credit_limit"],
		"opportunity": ["discount_pct", "stage"],
	},
	"amount_fields": ["amount", "discount_amount", "refund_amount"],
	"blocked_destinations": ["pastebin.com", "gmail.com", "dropbox.com", "Transfer.SH."],
	"escalation": {"deny_threshold": 3, "window_seconds": 900},
}

acme_approvers := ["user:owner@acme.example", "user:revops@acme.example"]

# A valid production write that nothing catches: allowed as low_value.
update := {
	"tool": "crm.update",
	"arguments": {
		"object": "opportunity",
		"recordId": "opp_123",
		"tenantId": "acme",
		"changes": {"close_date": "2026-12-01"},
	},
	"context": {
		"actorId": "agent:sales-assistant",
		"tenantId": "acme",
		"environment": "production",
		"reason": "Customer asked to move the close date",
	},
	"history": {"recentDenies": 0},
}

# A valid read that nothing catches: allowed as read_only.
read := {
	"tool": "crm.read",
	"arguments": {"object": "contact", "recordId": "c_1", "fields": ["name", "company"]},
	"context": {"actorId": "agent:sales-assistant", "tenantId": "acme", "environment": "production"},
	"history": {"recentDenies": 0},
}

# The one place the fixture is bound; every test decides through it, both
# ways: with the derived values the adapters store at data.veto.derived
# (derived.rego) and without them, and the two answers must be the same.
decide(call) := result if {
	# regal ignore:with-outside-test-context,external-reference
	result := crm.decision with input as call with data.veto.config as fixture

	# regal ignore:with-outside-test-context,external-reference
	stored := crm.derived with data.veto.config as fixture

	# regal ignore:with-outside-test-context,external-reference
	result == crm.decision with input as call with data.veto.config as fixture with data.veto.derived as stored
}

patched(call, patch) := object.union(call, patch)

expect(action, escalated, codes, approvers) := {
	"action": action,
	"escalated": escalated,
	"reasons": [{"code": code, "message": crm.reason_codes[code].message} | some code in sort(codes)],
	"approvers": approvers,
}

denied(codes) := expect("deny", false, codes, [])

# A decision of a call with a destination also lists the hosts the policy read.
with_hosts(result, hosts) := object.union(result, {"destination_hosts": hosts})

# The decision without the hosts, for tests about something else than destinations.
verdict(call) := object.remove(decide(call), ["destination_hosts"])

allowed(code) := expect("allow", false, {code}, [])

needs_approval(codes) := expect("require_approval", false, codes, acme_approvers)

escalated := expect("deny", true, {"repeated_denies"}, [])

invalid(problems) := {
	"action": "deny",
	"escalated": false,
	"reasons": [{
		"code": "invalid_input",
		"message": concat("", [crm.reason_codes.invalid_input.message, ": ", concat("; ", sort(problems))]),
	}],
	"approvers": [],
}
