package veto.crm_test

test_deny_missing_reason if {
	decide(json.remove(update, ["context/reason"])) == denied({"missing_reason"})
}

test_deny_missing_reason_whitespace if {
	decide(patched(update, {"context": {"reason": " \n\t "}})) == denied({"missing_reason"})
}

test_allow_read_only_needs_no_reason if {
	decide(json.remove(read, ["context/reason"])) == allowed("read_only")
}
