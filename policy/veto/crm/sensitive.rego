package veto.crm

# Sensitive field names compare under the one case-folding rule (text.rego):
# "SSN" and "ſſn" are "ssn", "TAX_İD" is "tax_id"; and so do object names
# ("Opportunity" is "opportunity"). Both the keys a call changes and the fields
# it requests are checked for every tool kind, so an export (a write) of a
# sensitive field needs approval too. A sensitive_fields that is not an object
# of lists makes every field sensitive.

# The sensitive names for this call: those of "*" and of the call's object
# (the fold keys of a name outside ASCII are compared with these).
_sensitive_lists contains _sensitive_fields["*"]

_sensitive_lists contains names if {
	some object_name, names in _sensitive_fields
	_plain_key(trim_space(object_name)) == _call_object_key
}

_sensitive_lists contains names if {
	some folded in _call_object_folded
	some object_name, names in _sensitive_fields
	_fold_key(trim_space(object_name)) == folded
}

# The call's object, surrounding white space ignored: its fold key the short
# way, and (a set, so that it is computed once) the long way only when it is
# outside ASCII (text.rego).
_call_object := trim_space(_arguments.object) if is_string(_arguments.object)

_call_object_key := lower(_call_object)

_call_object_folded contains _fold_key(_call_object) if not _ascii(_call_object)

_sensitive_fold_keys contains _fold_key(name) if {
	some names in _sensitive_lists
	some name in names
	is_string(name)
}

_touched_fields contains name if {
	is_object(_arguments.changes)
	some name, _ in _arguments.changes
}

_touched_fields contains name if {
	is_array(_arguments.fields)
	some name in _arguments.fields
	is_string(name)
}

# The plain keys of the configured names (derived.rego): those of "*", of the
# object names with the call's object's plain key, and, for a call's object
# outside ASCII, of the object names with its fold key.
_sensitive_field(name) if _sensitive_star[lower(name)]

_sensitive_field(name) if _sensitive_object_keys[lower(name)]

_sensitive_field(name) if {
	some folded in _call_object_folded
	_sensitive_folded_object_keys(folded)[lower(name)]
}

_sensitive_field(name) if {
	not _ascii(name)
	_fold_key(name) in _sensitive_fold_keys
}

_approval contains "sensitive_field" if {
	some name in _touched_fields
	_sensitive_field(name)
}

_approval contains "sensitive_field" if {
	not _sensitive_fields_usable
	count(_touched_fields) > 0
}
