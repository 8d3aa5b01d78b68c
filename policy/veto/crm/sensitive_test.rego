package veto.crm_test

import data.veto.crm

test_require_approval_sensitive_field_any_object if {
	decide(patched(update, {"arguments": {"changes": {"ssn": "123-45-6789"}}})) == needs_approval({"sensitive_field"})
}

test_require_approval_sensitive_field_of_object if {
	decide(patched(update, {"arguments": {"changes": {"stage": "closed_won"}}})) == needs_approval({"sensitive_field"})
}

test_require_approval_sensitive_field_case_insensitive if {
	decide(patched(update, {"arguments": {"changes": {"Discount_PCT": 30}}})) == needs_approval({"sensitive_field"})
}

test_allow_low_value_field_sensitive_only_for_other_object if {
	decide(patched(update, {"arguments": {"changes": {"credit_limit": 10}}})) == allowed("low_value")
}

test_require_approval_sensitive_field_without_object if {
	call := patched(json.remove(update, ["arguments/object"]), {"arguments": {"changes": {"tax_id": "x"}}})
	decide(call) == needs_approval({"sensitive_field"})
}

test_require_approval_sensitive_field_read if {
	decide(patched(read, {"arguments": {"fields": ["name", "SSN"]}})) == needs_approval({"sensitive_field"})
}

test_require_approval_sensitive_field_export if {
	call := patched(update, {"tool": "crm.export", "arguments": {"changes": {}, "fields": ["tax_id"]}})
	decide(call) == needs_approval({"sensitive_field"})
}

test_require_approval_both_reasons_sorted if {
	call := patched(update, {"arguments": {"amount": 48000, "changes": {"stage": "closed_won"}}})
	decide(call) == needs_approval({"sensitive_field", "production_amount"})
}

test_require_approval_object_name_any_case if {
	expected := needs_approval({"sensitive_field"})
	decide(patched(update, {"arguments": {"object": "Opportunity", "changes": {"stage": "closed_won"}}})) == expected
	decide(patched(update, {"arguments": {"object": " OPPORTUNITY ", "changes": {"stage": "x"}}})) == expected
}

# An object and a field both outside ASCII: the field's fold key is compared
# with the names of every list whose object name has the object's fold key.
test_require_approval_object_and_field_outside_ascii if {
	expected := needs_approval({"sensitive_field"})
	decide(patched(update, {"arguments": {"object": "OPPORTUN\u0130TY", "changes": {"\u017ftage": "x"}}})) == expected
	call := patched(update, {"arguments": {"object": "OPPORTUN\u0130TY", "changes": {"n\u0101me": "x"}}})
	decide(call) == allowed("low_value")
}

test_require_approval_malformed_sensitive_fields_make_every_field_sensitive if {
	config := object.union(fixture, {"sensitive_fields": {"*": "ssn"}})
	crm.decision == needs_approval({"sensitive_field"}) with input as update with data.veto.config as config
	crm.decision == needs_approval({"sensitive_field"}) with input as read with data.veto.config as config
}

test_allow_read_only_malformed_sensitive_fields_nothing_touched if {
	config := object.union(fixture, {"sensitive_fields": ["ssn"]})
	call := patched(json.remove(read, ["arguments/fields"]), {"tool": "crm.search"})
	crm.decision == allowed("read_only") with input as call with data.veto.config as config
}
