package veto.crm_test

test_deny_unknown_environment if {
	decide(patched(update, {"context": {"environment": "prod"}})) == denied({"unknown_environment"})
}

test_deny_unknown_environment_is_case_sensitive if {
	decide(patched(update, {"context": {"environment": "Production"}})) == denied({"unknown_environment"})
}

test_allow_low_value_staging if {
	decide(patched(update, {"context": {"environment": "staging"}})) == allowed("low_value")
}
