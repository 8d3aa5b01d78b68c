package veto.crm_test

import data.veto.crm

# derived.rego: the values the adapters compute once per data document.

test_derived_values_of_the_fixture if {
	stored := crm.derived with data.veto.config as fixture
	stored.from == {
		"sensitive_fields": fixture.sensitive_fields,
		"amount_fields": fixture.amount_fields,
		"blocked_destinations": fixture.blocked_destinations,
	}
	stored.blocked_hosts == {"pastebin.com": true, "gmail.com": true, "dropbox.com": true, "transfer.sh": true}
	stored.sensitive_fields_usable == true
	stored.sensitive_star == {"ssn": true, "tax_id": true}
	stored.sensitive_objects == {
		"*": {"ssn": true, "tax_id": true},
		"account": {"credit_limit": true},
		"opportunity": {"discount_pct": true, "stage": true},
	}
	stored.sensitive_folded_objects == stored.sensitive_objects
	stored.amount_fields_usable == true
	stored.amount_plain == {"amount": true, "discount_amount": true, "refund_amount": true}
	stored.amount_fold == stored.amount_plain
	count(stored.blank_characters) == count(crm._blank_set)
	every ch in crm._blank_set {
		stored.blank_characters[ch]
	}
}

# Object names with the same key share one entry; keys are plain and fold keys.
test_derived_values_join_object_names_with_one_key if {
	config := object.union(object.remove(fixture, ["sensitive_fields", "amount_fields"]), {
		"sensitive_fields": {" Account ": ["\u017fsn"], "ACCOUNT": ["Stage", 7], "OPPORTUN\u0130TY": ["x"]},
		"amount_fields": ["Amount", 7],
	})
	stored := crm.derived with data.veto.config as config
	stored.sensitive_star == {}
	stored.sensitive_objects.account == {"ssn": true, "stage": true}
	stored.sensitive_folded_objects == {"account": {"ssn": true, "stage": true}, "opportunity": {"x": true}}
	stored.sensitive_fields_usable == true
	stored.amount_fields_usable == false
	stored.amount_plain == {"amount": true}
}

test_derived_values_of_malformed_lists if {
	config := object.union(fixture, {"sensitive_fields": {"*": "ssn"}, "amount_fields": "amount"})
	stored := crm.derived with data.veto.config as config
	stored.sensitive_fields_usable == false
	stored.sensitive_star == {}
	stored.amount_fields_usable == false
	stored.amount_plain == {}
	stored.amount_fold == {}
}

# The stored value is what the rules read: one that names other keys, from
# the configured names, changes the answer (only the adapters write it).
test_stored_value_is_read if {
	stored := crm.derived with data.veto.config as fixture
	call := patched(update, {"arguments": {"changes": {"close_date": "x", "refund_amount": 9000}}})
	crm.decision == needs_approval({"production_amount"}) with input as call with data.veto.config as fixture
		with data.veto.derived as stored
	other := object.union(object.remove(stored, ["sensitive_star", "amount_plain"]), {
		"sensitive_star": {"close_date": true},
		"amount_plain": {},
	})
	crm.decision == needs_approval({"sensitive_field"}) with input as call with data.veto.config as fixture
		with data.veto.derived as other
}

# A stored value derived from other names than the configured ones is not read.
test_stored_value_from_other_names_is_ignored if {
	others := object.union(object.remove(fixture, ["sensitive_fields"]), {
		"sensitive_fields": {"*": ["name"]},
		"amount_fields": [],
	})
	stale := crm.derived with data.veto.config as others
	call := patched(update, {"arguments": {"changes": {"ssn": "x", "refund_amount": 9000}}})
	expected := needs_approval({"production_amount", "sensitive_field"})
	crm.decision == expected with input as call with data.veto.config as fixture
	crm.decision == expected with input as call with data.veto.config as fixture with data.veto.derived as stale
	other_amounts := object.union(object.remove(stale, ["from"]), {"from": {
		"sensitive_fields": fixture.sensitive_fields,
		"amount_fields": [],
	}})
	crm.decision == expected with input as call with data.veto.config as fixture with data.veto.derived as other_amounts
	other_names := object.union(object.remove(stale, ["from"]), {"from": {
		"sensitive_fields": {"*": ["name"]},
		"amount_fields": fixture.amount_fields,
	}})
	crm.decision == expected with input as call with data.veto.config as fixture with data.veto.derived as other_names
}

# The blocked hosts: entries read as destinations, blank and non-string
# entries naming nothing, a list that is not a list naming nothing (it blocks
# every destination by a rule of its own, destination.rego).
test_derived_blocked_hosts if {
	every entries, hosts in {
		["https://Hooks.Example.com/x", "ops@files.example.net", "", "  ", 7]: {
			"hooks.example.com": true,
			"files.example.net": true,
		},
		["[::0:1]", "10.0.0.1:8080"]: {"[::1]": true, "10.0.0.1": true},
	} {
		stored := crm.derived with data.veto.config as object.union(fixture, {"blocked_destinations": entries})
		stored.blocked_hosts == hosts
	}
	stored := crm.derived with data.veto.config as object.union(fixture, {"blocked_destinations": "pastebin.com"})
	stored.blocked_hosts == {}
}

# A stored value's blocked hosts are read when its "from" holds the configured
# list, and not otherwise; without one the hosts are derived for the call.
test_stored_blocked_hosts_read_only_from_the_configured_list if {
	stored := crm.derived with data.veto.config as fixture
	blocked := to("https://pastebin.com/raw/1")
	crm.decision == with_hosts(denied({"blocked_destination"}), ["pastebin.com"]) with input as blocked
		with data.veto.config as fixture
		with data.veto.derived as stored
	clear := to("https://hooks.example.com/x")
	crm.decision == with_hosts(allowed("low_value"), ["hooks.example.com"]) with input as clear
		with data.veto.config as fixture
		with data.veto.derived as stored

	# Forged with the configured list as "from": read (only the adapters write it).
	forged := object.union(object.remove(stored, ["blocked_hosts"]), {"blocked_hosts": {"example.com": true}})
	crm.decision == with_hosts(allowed("low_value"), ["pastebin.com"]) with input as blocked
		with data.veto.config as fixture
		with data.veto.derived as forged
	crm.decision == with_hosts(denied({"blocked_destination"}), ["hooks.example.com"]) with input as clear
		with data.veto.config as fixture
		with data.veto.derived as forged

	# Left from another list, or with no list configured: the derivation.
	stale := crm.derived with data.veto.config as object.union(fixture, {"blocked_destinations": ["example.com"]})
	crm.decision == with_hosts(denied({"blocked_destination"}), ["pastebin.com"]) with input as blocked
		with data.veto.config as fixture
		with data.veto.derived as stale
	unlisted := object.remove(fixture, ["blocked_destinations"])
	crm.decision == with_hosts(allowed("low_value"), ["pastebin.com"]) with input as blocked
		with data.veto.config as unlisted
		with data.veto.derived as forged
}

# The configured blocked lists of the destination tests decide alike both ways.
test_blocked_lists_decide_alike_stored_and_derived if {
	every entries in [["", "  ", 7], ["https://Hooks.Example.com/x", "ops@files.example.net"], "pastebin.com", []] {
		config := object.union(fixture, {"blocked_destinations": entries})
		stored := crm.derived with data.veto.config as config
		every destination in ["hooks.example.com", "a.files.example.net", "https://pastebin.com", "x@gmail.com"] {
			call := to(destination)
			derived := crm.decision with input as call with data.veto.config as config
			derived == crm.decision with input as call with data.veto.config as config with data.veto.derived as stored
		}
	}
}
