package veto.crm

# Sensitive field names compare case-insensitively ("SSN" is "ssn"), and so do
# object names ("Opportunity" is "opportunity"). Both the keys a call changes
# and the fields it requests are checked for every tool kind, so an export (a
# write) of a sensitive field needs approval too. A sensitive_fields that is
# not an object of lists makes every field sensitive.

_sensitive_names contains lower(name) if {
	some name in _sensitive_fields["*"]
	is_string(name)
}

_sensitive_names contains lower(name) if {
	is_string(_arguments.object)
	some object_name, names in _sensitive_fields
	lower(trim_space(object_name)) == lower(trim_space(_arguments.object))
	some name in names
	is_string(name)
}

default _sensitive_fields_usable := false

_sensitive_fields_usable if {
	is_object(_sensitive_fields)
	every names in _sensitive_fields {
		is_array(names)
	}
}

_touched_fields contains lower(name) if {
	is_object(_arguments.changes)
	some name, _ in _arguments.changes
}

_touched_fields contains lower(name) if {
	is_array(_arguments.fields)
	some name in _arguments.fields
	is_string(name)
}

_approval contains "sensitive_field" if {
	some name in _touched_fields
	name in _sensitive_names
}

_approval contains "sensitive_field" if {
	not _sensitive_fields_usable
	count(_touched_fields) > 0
}
