package veto.crm_test

import data.veto.crm

test_deny_escalated_at_threshold if {
	decide(patched(update, {"history": {"recentDenies": 3}})) == escalated
	decide(patched(update, {"history": {"recentDenies": 40}})) == escalated
}

test_allow_low_value_one_below_threshold if {
	decide(patched(update, {"history": {"recentDenies": 2}})) == allowed("low_value")
}

test_allow_low_value_without_history if {
	decide(json.remove(update, ["history"])) == allowed("low_value")
}

test_deny_escalated_threshold_from_data if {
	config := object.union(fixture, {"escalation": {"deny_threshold": 1}})
	call := patched(update, {"history": {"recentDenies": 1}})
	crm.decision == escalated with input as call with data.veto.config as config
}

test_deny_escalated_malformed_threshold_uses_default if {
	config := object.union(fixture, {"escalation": {"deny_threshold": "100"}})
	at_default := patched(update, {"history": {"recentDenies": 3}})
	crm.decision == escalated with input as at_default with data.veto.config as config
	below_default := patched(update, {"history": {"recentDenies": 2}})
	crm.decision == allowed("low_value") with input as below_default with data.veto.config as config
}

test_deny_escalated_reads_too if {
	decide(patched(read, {"history": {"recentDenies": 3}})) == escalated
}

test_deny_invalid_input_wins_over_escalation if {
	call := patched(update, {"history": {"recentDenies": 5}, "context": {"actorId": ""}})
	decide(call) == invalid({"context.actorId must be a non-empty string"})
}

# A threshold of zero or below escalates a call without history: its count reads as zero.
test_deny_escalated_threshold_zero_without_history if {
	config := object.union(fixture, {"escalation": {"deny_threshold": 0}})
	without_history := object.remove(update, ["history"])
	crm.decision == escalated with input as without_history with data.veto.config as config
}
