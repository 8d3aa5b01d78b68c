package veto.crm

# The data document (data.veto.config) configures the policy. Every lookup below
# has a default so a partial document still evaluates; a value of the wrong type
# never widens what is allowed (see the rules that use them).

default _config := {}

_config := data.veto.config if is_object(data.veto.config)

_tools := object.get(_config, "tools", {})

_tenants := object.get(_config, "tenants", {})

_environments := object.get(_config, "environments", [])

_sensitive_fields := object.get(_config, "sensitive_fields", {})

_amount_fields := object.get(_config, "amount_fields", ["amount"])

_blocked_destinations := object.get(_config, "blocked_destinations", [])

default _deny_threshold := 3

_deny_threshold := threshold if {
	threshold := _config.escalation.deny_threshold
	is_number(threshold)
}

# A required text: a string that is not blank (text.rego).
_non_empty_string(value) if {
	is_string(value)
	not _blank(value)
}
