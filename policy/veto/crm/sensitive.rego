package veto.crm

# Sensitive field names compare case-insensitively ("SSN" is "ssn"). Both the
# keys a call changes and the fields it requests are checked for every tool
# kind, so an export (a write) of a sensitive field needs approval too.

_sensitive_names contains lower(name) if {
	some name in _sensitive_fields["*"]
	is_string(name)
}

_sensitive_names contains lower(name) if {
	some name in _sensitive_fields[_arguments.object]
	is_string(name)
}

_approval contains "sensitive_field" if {
	is_object(_arguments.changes)
	some name, _ in _arguments.changes
	lower(name) in _sensitive_names
}

_approval contains "sensitive_field" if {
	is_array(_arguments.fields)
	some name in _arguments.fields
	is_string(name)
	lower(name) in _sensitive_names
}
