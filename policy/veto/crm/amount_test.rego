package veto.crm_test

import data.veto.crm

with_amount(call, amount) := patched(call, {"arguments": {"amount": amount}})

test_require_approval_production_amount_at_threshold if {
	decide(with_amount(update, 5000)) == needs_approval({"production_amount"})
}

test_allow_low_value_just_below_threshold if {
	decide(with_amount(update, 4999.99)) == allowed("low_value")
}

test_require_approval_production_amount_at_max if {
	decide(with_amount(update, 250000)) == needs_approval({"production_amount"})
}

test_deny_amount_over_limit if {
	decide(with_amount(update, 250000.01)) == denied({"amount_over_limit"})
}

test_amounts_compare_by_absolute_value if {
	decide(with_amount(update, -6000)) == needs_approval({"production_amount"})
	decide(with_amount(update, -300000)) == denied({"amount_over_limit"})
	decide(with_amount(update, -4999)) == allowed("low_value")
}

test_require_approval_largest_amount_field_counts if {
	call := patched(update, {"arguments": {"amount": 10, "changes": {"discount_amount": 7000, "refund_amount": -20}}})
	decide(call) == needs_approval({"production_amount"})
}

test_deny_amount_over_limit_in_changes if {
	decide(patched(update, {"arguments": {"changes": {"refund_amount": -300000}}})) == denied({"amount_over_limit"})
}

test_allow_low_value_unlisted_numeric_change if {
	decide(patched(update, {"arguments": {"changes": {"probability": 900000}}})) == allowed("low_value")
}

test_allow_low_value_amount_outside_production if {
	decide(with_amount(patched(update, {"context": {"environment": "staging"}}), 9000)) == allowed("low_value")
}

test_deny_amount_over_limit_outside_production if {
	call := with_amount(patched(update, {"context": {"environment": "development"}}), 300000)
	decide(call) == denied({"amount_over_limit"})
}

test_allow_low_value_tenant_without_threshold_or_limit if {
	call := patched(update, {"context": {"tenantId": "globex"}, "arguments": {"tenantId": "globex", "amount": 1e12}})
	decide(call) == allowed("low_value")
}

test_allow_read_only_amount_is_not_limited if {
	decide(with_amount(read, 1e9)) == allowed("read_only")
}

test_deny_amount_over_limit_malformed_limit_is_strict if {
	call := patched(update, {"context": {"tenantId": "strict"}, "arguments": {"tenantId": "strict", "amount": 11}})
	decide(call) == denied({"amount_over_limit"})
}

test_require_approval_malformed_threshold_is_zero if {
	config := json.remove(fixture, ["tenants/strict/max_amount"])
	call := patched(update, {"context": {"tenantId": "strict"}, "arguments": {"tenantId": "strict", "amount": 0}})
	expected := expect("require_approval", false, {"production_amount"}, ["user:a@strict.example"])
	crm.decision == expected with input as call with data.veto.config as config
}

test_deny_amount_over_limit_amount_field_any_case if {
	decide(patched(update, {"arguments": {"changes": {"Amount": 900000}}})) == denied({"amount_over_limit"})
	decide(patched(update, {"arguments": {"changes": {"REFUND_AMOUNT": -900000}}})) == denied({"amount_over_limit"})
}

test_deny_invalid_input_amount_field_any_case_string if {
	call := patched(update, {"arguments": {"changes": {"Discount_Amount": "9000"}}})
	decide(call) == invalid({"arguments.changes.Discount_Amount must be a finite number"})
}

test_require_approval_malformed_amount_fields_count_every_number if {
	config := object.union(fixture, {"amount_fields": "amount"})
	call := patched(update, {"arguments": {"changes": {"probability": 9000, "next_step": "call"}}})
	crm.decision == needs_approval({"production_amount"}) with input as call with data.veto.config as config
}

# docs/contract.md §9 "Amount precision".
imprecise(field) := invalid({concat("", [
	field,
	" must have at most 15 significant digits",
	" and be 0 or between 1e-307 and 1e308 in magnitude",
])})

test_deny_invalid_input_amount_more_than_15_significant_digits if {
	# As a double this is 250000, at the limit; its text is above it.
	decide(with_amount(update, 250000.00000000001)) == imprecise("arguments.amount")
	decide(with_amount(update, -250000.00000000001)) == imprecise("arguments.amount")
	decide(with_amount(update, 1234567890123456)) == imprecise("arguments.amount")
	decide(with_amount(update, 0.30000000000000004)) == imprecise("arguments.amount")
	decide(with_amount(update, 4999.9999999999999999999999999999)) == imprecise("arguments.amount")
}

test_allow_low_value_15_significant_digits if {
	decide(with_amount(update, 4999.99999999999)) == allowed("low_value")
	decide(with_amount(update, 123.456789012345)) == allowed("low_value")
	decide(with_amount(update, 0.000000000000000000000000000000123456789012345)) == allowed("low_value")
}

test_require_approval_trailing_zeros_are_not_significant if {
	decide(with_amount(update, 250000.000000000000000000)) == needs_approval({"production_amount"})
	decide(with_amount(update, 25e4)) == needs_approval({"production_amount"})
	decide(with_amount(update, 0.25E+6)) == needs_approval({"production_amount"})
	decide(with_amount(update, 2500000e-1)) == needs_approval({"production_amount"})
}

test_allow_low_value_zero_whatever_its_exponent if {
	decide(with_amount(update, 0)) == allowed("low_value")
	decide(with_amount(update, 0.000)) == allowed("low_value")
	decide(with_amount(update, 0e400)) == allowed("low_value")
	decide(with_amount(update, 0E-10000)) == allowed("low_value")
}

# A zero whose JSON text is long or has an exponent (the literals above may
# reach the policy shortened): read past the short-text shortcut of _precise.
test_allow_low_value_zero_as_json_text if {
	every text in ["0.00000000000000000000", "-0e400", "0E-10000"] {
		decide(with_amount(update, json.unmarshal(text))) == allowed("low_value")
	}
}

test_deny_invalid_input_amount_out_of_double_range if {
	decide(with_amount(update, 1e400)) == imprecise("arguments.amount")
	decide(with_amount(update, -1E+400)) == imprecise("arguments.amount")
	decide(with_amount(update, 1e308)) == imprecise("arguments.amount")
	decide(with_amount(update, 1e-400)) == imprecise("arguments.amount")
	decide(with_amount(update, 1e-308)) == imprecise("arguments.amount")
	decide(with_amount(update, 1e10000)) == imprecise("arguments.amount")
	decide(with_amount(update, 1e-10000)) == imprecise("arguments.amount")
}

test_deny_amount_over_limit_largest_and_smallest_precise if {
	decide(with_amount(update, 9.99999999999999e307)) == denied({"amount_over_limit"})
	decide(with_amount(update, 1e+0307)) == denied({"amount_over_limit"})
	decide(with_amount(update, 1e-307)) == allowed("low_value")
	decide(with_amount(update, 1e-0000307)) == allowed("low_value")
}

test_deny_invalid_input_changed_amount_field_imprecise if {
	call := patched(update, {"arguments": {"changes": {"Refund_Amount": 1e400, "amount": 12}}})
	decide(call) == imprecise("arguments.changes.Refund_Amount")
	decide(patched(update, {"arguments": {"changes": {"probability": 1e400}}})) == allowed("low_value")
}
