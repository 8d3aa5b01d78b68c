package veto.crm_test

import data.veto.crm

test_deny_invalid_input_missing_actor if {
	decide(json.remove(update, ["context/actorId"])) == invalid({"context.actorId must be a non-empty string"})
}

test_deny_invalid_input_blank_tenant if {
	call := patched(update, {"context": {"tenantId": " \t "}})
	decide(call) == invalid({"context.tenantId must be a non-empty string"})
}

test_deny_invalid_input_environment_not_string if {
	call := patched(update, {"context": {"environment": 1}})
	decide(call) == invalid({"context.environment must be a non-empty string"})
}

test_deny_invalid_input_tool_not_string if {
	decide(patched(update, {"tool": ["crm.update"]})) == invalid({"tool must be a non-empty string"})
	decide(patched(update, {"tool": ""})) == invalid({"tool must be a non-empty string"})
}

test_deny_invalid_input_arguments_not_object if {
	decide(patched(update, {"arguments": [1, 2]})) == invalid({"arguments must be an object"})
	decide(json.remove(update, ["arguments"])) == invalid({"arguments must be an object"})
}

test_deny_invalid_input_context_not_object if {
	decide(patched(update, {"context": "acme"})) == invalid({
		"context must be an object",
		"context.actorId must be a non-empty string",
		"context.environment must be a non-empty string",
		"context.tenantId must be a non-empty string",
	})
}

test_deny_invalid_input_input_not_object if {
	crm.decision == invalid({
		"input must be an object",
		"tool must be a non-empty string",
		"arguments must be an object",
		"context must be an object",
		"context.actorId must be a non-empty string",
		"context.environment must be a non-empty string",
		"context.tenantId must be a non-empty string",
	}) with input as "crm.update" with data.veto.config as fixture
}

test_deny_invalid_input_optional_context_not_string if {
	call := patched(update, {"context": {"reason": 5, "requestId": null, "sourceSystem": "salesforce"}})
	decide(call) == invalid({"context.reason must be a string", "context.requestId must be a string"})
}

test_deny_invalid_input_each_optional_context_name if {
	call := patched(update, {"context": {"sourceSystem": 1, "sessionId": [], "onBehalfOf": {}}})
	decide(call) == invalid({
		"context.onBehalfOf must be a string",
		"context.sessionId must be a string",
		"context.sourceSystem must be a string",
	})
}

test_deny_invalid_input_string_arguments_wrong_type if {
	call := patched(update, {"arguments": {"recordId": 123, "destination": null, "object": {}, "tenantId": true}})
	decide(call) == invalid({
		"arguments.recordId must be a string",
		"arguments.destination must be a string",
		"arguments.object must be a string",
		"arguments.tenantId must be a string",
	})
}

test_deny_invalid_input_changes_not_object if {
	call := patched(update, {"arguments": {"changes": [["amount", 10]]}})
	decide(call) == invalid({"arguments.changes must be an object"})
}

test_deny_invalid_input_fields_not_strings if {
	expected := invalid({"arguments.fields must be an array of strings"})
	decide(patched(read, {"arguments": {"fields": ["name", 1]}})) == expected
	decide(patched(read, {"arguments": {"fields": "name"}})) == expected
}

# Rego orders every string above every number: "9000" > 250000 is true and
# "9000" >= 5000 is true, so an unchecked string could slip past or trip a limit.
test_deny_invalid_input_amount_string if {
	decide(patched(update, {"arguments": {"amount": "9000"}})) == invalid({"arguments.amount must be a finite number"})
}

test_deny_invalid_input_amount_null_or_boolean if {
	decide(patched(update, {"arguments": {"amount": null}})) == invalid({"arguments.amount must be a finite number"})
	decide(patched(update, {"arguments": {"amount": false}})) == invalid({"arguments.amount must be a finite number"})
}

test_deny_invalid_input_changed_amount_field_string if {
	call := patched(update, {"arguments": {"changes": {"amount": "48000", "refund_amount": [1]}}})
	decide(call) == invalid({
		"arguments.changes.amount must be a finite number",
		"arguments.changes.refund_amount must be a finite number",
	})
}

test_allow_low_value_non_amount_field_may_be_string if {
	decide(patched(update, {"arguments": {"changes": {"next_step": "9000"}}})) == allowed("low_value")
}

test_deny_invalid_input_history_wrong_type if {
	decide(patched(update, {"history": 3})) == invalid({"history must be an object"})
	not_a_count := invalid({"history.recentDenies must be a non-negative integer"})
	decide(patched(update, {"history": {"recentDenies": -1}})) == not_a_count
	decide(patched(update, {"history": {"recentDenies": 1.5}})) == not_a_count
	decide(patched(update, {"history": {"recentDenies": "9"}})) == not_a_count
	decide(patched(update, {"history": {"recentDenies": 1e300}})) == not_a_count
}

test_allow_low_value_extra_argument_fields_pass_through if {
	decide(patched(update, {"arguments": {"priority": "high", "tags": ["q4"]}})) == allowed("low_value")
}

test_deny_invalid_input_no_input_at_all if {
	crm.decision == invalid({
		"input must be an object",
		"tool must be a non-empty string",
		"arguments must be an object",
		"context must be an object",
		"context.actorId must be a non-empty string",
		"context.environment must be a non-empty string",
		"context.tenantId must be a non-empty string",
	}) with data.veto.config as fixture
}
