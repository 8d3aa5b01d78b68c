package veto.crm_test

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
