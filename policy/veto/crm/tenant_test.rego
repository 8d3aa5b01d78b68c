package veto.crm_test

test_deny_unknown_tenant if {
	call := patched(update, {"context": {"tenantId": "umbrella"}, "arguments": {"tenantId": "umbrella"}})
	decide(call) == denied({"unknown_tenant"})
}

test_deny_wrong_tenant if {
	decide(patched(update, {"arguments": {"tenantId": "globex"}})) == denied({"wrong_tenant"})
}

test_deny_wrong_tenant_is_case_sensitive if {
	decide(patched(update, {"arguments": {"tenantId": "ACME"}})) == denied({"wrong_tenant"})
}

test_allow_low_value_without_target_tenant if {
	decide(json.remove(update, ["arguments/tenantId"])) == allowed("low_value")
}

test_deny_actor_not_allowed if {
	decide(patched(update, {"context": {"actorId": "agent:rogue"}})) == denied({"actor_not_allowed"})
}

test_allow_low_value_tenant_without_actor_list if {
	call := patched(update, {
		"context": {"tenantId": "globex", "actorId": "agent:any"},
		"arguments": {"tenantId": "globex"},
	})
	decide(call) == allowed("low_value")
}

test_deny_actor_not_allowed_malformed_actor_list if {
	call := patched(update, {"context": {"tenantId": "malformed"}, "arguments": {"tenantId": "malformed"}})
	decide(call) == denied({"actor_not_allowed"})
}

test_deny_no_approver_empty_list if {
	call := patched(update, {
		"context": {"tenantId": "initech", "actorId": "agent:billing"},
		"arguments": {"tenantId": "initech", "amount": 1000},
	})
	decide(call) == denied({"no_approver"})
}

test_deny_no_approver_list_absent if {
	call := patched(update, {
		"context": {"tenantId": "noapprovers", "actorId": "agent:billing"},
		"arguments": {"tenantId": "noapprovers", "changes": {"ssn": "x"}},
	})
	decide(call) == denied({"no_approver"})
}

test_deny_no_approver_only_approver_is_the_actor if {
	call := patched(update, {
		"context": {"tenantId": "selfco", "actorId": "agent:self-approver"},
		"arguments": {"tenantId": "selfco", "amount": 2000},
	})
	decide(call) == denied({"no_approver"})
}

test_require_approval_approvers_exclude_the_actor if {
	call := patched(update, {
		"context": {"tenantId": "globex", "actorId": "agent:self-approver"},
		"arguments": {"tenantId": "globex", "changes": {"tax_id": "x"}},
	})
	decide(call) == expect("require_approval", false, {"sensitive_field"}, ["user:admin@globex.example"])
}

test_allow_no_approver_irrelevant_when_no_approval_needed if {
	call := patched(update, {
		"context": {"tenantId": "initech", "actorId": "agent:billing"},
		"arguments": {"tenantId": "initech"},
	})
	decide(call) == allowed("low_value")
}

test_deny_unknown_tenant_not_no_approver if {
	call := patched(update, {"context": {"tenantId": "umbrella"}, "arguments": {"tenantId": "umbrella", "amount": 9000}})
	decide(call) == denied({"unknown_tenant"})
}
