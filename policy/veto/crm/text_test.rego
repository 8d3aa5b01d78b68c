package veto.crm_test

import data.veto.crm

# One idea of blank and one case-folding rule (docs/contract.md §9), run
# through the whole decision. The lists come from unicode_test.rego, generated
# from Node's Unicode properties and both evaluators' lower().

with_reason(text) := patched(update, {"context": {"reason": text}})

test_deny_missing_reason_invisible_characters if {
	every text in ["\u200b", "\ufeff", "\u0000", "\u001c", "\u200b \u00a0\ufeff", "\u2060\u180e\u3164"] {
		decide(with_reason(text)) == denied({"missing_reason"})
	}
}

test_deny_missing_reason_all_blank_characters_together if {
	decide(with_reason(blank_characters)) == denied({"missing_reason"})
}

test_allow_low_value_reason_around_blank_characters if {
	decide(with_reason(concat("", [blank_characters, "Ticket 4411", blank_characters]))) == allowed("low_value")
	decide(with_reason(concat("", ["Ticket 4411", blank_characters]))) == allowed("low_value")
}

test_deny_invalid_input_required_context_of_blank_characters if {
	every text in ["\u200b", "\u0000", "\u001c\ufeff", blank_characters] {
		call := patched(update, {"context": {"actorId": text, "tenantId": text, "environment": text}})
		decide(call) == invalid({
			"context.actorId must be a non-empty string",
			"context.tenantId must be a non-empty string",
			"context.environment must be a non-empty string",
		})
	}
}

test_deny_invalid_input_blank_tool if {
	every text in ["\u200b", "\ufeff\u0000", blank_characters] {
		decide(patched(update, {"tool": text})) == invalid({"tool must be a non-empty string"})
	}
}

test_deny_no_approver_blank_approvers_only if {
	config := object.union(fixture, {"tenants": {"acme": {"approvers": ["\u200b", "\ufeff", " "]}}})
	call := patched(update, {"arguments": {"changes": {"ssn": "x"}}})
	crm.decision == denied({"no_approver"}) with input as call with data.veto.config as config
}

# Decide `call` with `config` merged over the fixture.
decide_with(call, config) := result if {
	# regal ignore:with-outside-test-context,external-reference
	result := crm.decision with input as call with data.veto.config as object.union(fixture, config)
}

with_changes(changes) := patched(update, {"arguments": {"changes": changes}})

test_require_approval_sensitive_field_dotted_capital_i if {
	decide(with_changes({"TAX_İD": "12-3456789"})) == needs_approval({"sensitive_field"})
}

test_require_approval_sensitive_field_dotted_capital_i_of_object if {
	call := patched(update, {"arguments": {"object": "account", "changes": {"BİLLİNG_EMAİL": "x@y.example"}}})
	decide_with(call, {"sensitive_fields": {"account": ["billing_email"]}}) == needs_approval({"sensitive_field"})
}

test_require_approval_sensitive_field_spelled_otherwise_in_the_data if {
	expected := needs_approval({"sensitive_field"})
	every spelled in ["ſſn", "SSN", "s\u0307sn"] {
		decide_with(with_changes({"ssn": "x"}), {"sensitive_fields": {"*": [spelled]}}) == expected
	}
	every spelled in ["TAX_İD", "tax_i\u0307d", "TAX_ID"] {
		decide_with(with_changes({"tax_id": "x"}), {"sensitive_fields": {"*": [spelled]}}) == expected
	}
}

test_require_approval_sensitive_field_read_final_sigma if {
	call := patched(read, {"arguments": {"fields": ["name", "ΟΔΥΣΣΕΥΣ"]}})
	decide_with(call, {"sensitive_fields": {"*": ["οδυσσευς"]}}) == needs_approval({"sensitive_field"})
}

test_require_approval_object_name_dotted_capital_i if {
	expected := needs_approval({"sensitive_field"})
	decide(patched(update, {"arguments": {"object": "OPPORTUNİTY", "changes": {"stage": "x"}}})) == expected

	# The dotless ı is another letter under every folding.
	dotless := patched(update, {"arguments": {"object": " Opportunıty ", "changes": {"stage": "x"}}})
	decide(dotless) == allowed("low_value")
}

test_deny_invalid_input_amount_field_dotted_capital_i if {
	problem := "arguments.changes.DİSCOUNT_AMOUNT must be a finite number"
	decide(with_changes({"DİSCOUNT_AMOUNT": "9000"})) == invalid({problem})
	decide(with_changes({"REFUND_AMOUNT": 300000, "DİSCOUNT_AMOUNT": 1})) == denied({"amount_over_limit"})
}

# Every class on which the foldings disagree, in one name: each member folds
# like its class's first one, as a field, an object and an amount field, and
# with one member swapped for the next class's it no longer does.
every_class_member := concat("", case_folding_classes)

first_members_only := concat("", [first_member_repeated(class) | some class in case_folding_classes])

first_member_repeated(class) := concat("", [substring(class, 0, 1) | some _ in split(class, "")])

# The first character swapped for the second class's first member.
next_class_member := concat("", [substring(case_folding_classes[1], 0, 1), substring(every_class_member, 1, -1)])

test_require_approval_sensitive_field_every_case_folding_class if {
	config := {"sensitive_fields": {"*": [first_members_only]}}
	decide_with(with_changes({every_class_member: "x"}), config) == needs_approval({"sensitive_field"})
	reverse := {"sensitive_fields": {"*": [every_class_member]}}
	decide_with(with_changes({first_members_only: "x"}), reverse) == needs_approval({"sensitive_field"})
	decide_with(with_changes({next_class_member: "x"}), config) == allowed("low_value")
}

test_require_approval_object_name_every_case_folding_class if {
	config := {"sensitive_fields": {first_members_only: ["next_step"]}}
	call := patched(update, {"arguments": {"object": every_class_member, "changes": {"next_step": "x"}}})
	decide_with(call, config) == needs_approval({"sensitive_field"})
	other := patched(update, {"arguments": {"object": next_class_member, "changes": {"next_step": "x"}}})
	decide_with(other, config) == allowed("low_value")
}

test_deny_invalid_input_amount_field_every_case_folding_class if {
	problem := concat("", ["arguments.changes.", every_class_member, " must be a finite number"])
	decide_with(with_changes({every_class_member: "9000"}), {"amount_fields": [first_members_only]}) == invalid({problem})
	decide_with(with_changes({next_class_member: "9000"}), {"amount_fields": [first_members_only]}) == allowed("low_value")
}

# The whole lists, character by character, through the helpers that decide:
# the lists are too long to run as whole decisions under opa test's tracing
# (test/common/unicode-tables.test.ts does that, on the real bundle, on OPA's Go and
# WASM evaluators).
test_blank_every_blank_character if {
	crm._blank(blank_characters)
	every ch in split(blank_range_ends, "") {
		crm._blank_character(ch)
		crm._blank_member(ch)
	}
}

test_blank_no_character_beside_the_blank_ones if {
	every ch in split(blank_neighbours, "") {
		not crm._blank_character(ch)
		not crm._blank_member(ch)
		not crm._blank(concat("", [" ", ch, "\u200b"]))
	}
}

test_fold_key_every_case_folding_class if {
	every class in case_folding_classes {
		every member in split(class, "") {
			crm._fold_key(member) == crm._fold_key(substring(class, 0, 1))
		}
	}
}

# An empty name is plain ASCII: it takes the short way and matches nothing.
test_allow_low_value_empty_names if {
	decide(with_changes({"": "x"})) == allowed("low_value")
	decide(patched(update, {"arguments": {"object": "", "fields": [""]}})) == allowed("low_value")
}
