package veto.crm

# What the policy derives from the data document alone: the plain and fold
# keys of the configured sensitive and amount field names, by object, and
# whether those lists are usable; the hosts blocked_destinations names
# (destination.rego); and the blank characters (unicode.rego) as an object to
# look a character up in. On the WASM evaluator every rule is
# evaluated again for each call, so the adapters evaluate `derived` once per
# data document (at load, and for each new instance) and store its value at
# data.veto.derived, replacing whatever the document held there
# (docs/contract.md §2). The rules below read the stored value when present
# and derive the same value from the configured names when it is absent (OPA's
# evaluator, `opa test`, an OPA server): the two answers are the same, and
# these rules are the one definition of both.
#
# A stored value is read only when the names it was derived from ("from") are
# the configured names: a data document that carries a value left from other
# names gets the derivation, never that value.

# METADATA
# title: Derived
# description: >-
#   The values the policy derives from the data document alone, for a host to
#   compute once per data document and store at data.veto.derived (the
#   adapters do). Its input is ignored.
# entrypoint: true
derived := {
	"from": {
		"sensitive_fields": _sensitive_fields,
		"amount_fields": _amount_fields,
		"blocked_destinations": _blocked_destinations,
	},
	"sensitive_fields_usable": _derive_sensitive_fields_usable,
	"sensitive_star": _derive_sensitive_star,
	"sensitive_objects": _derive_sensitive_objects,
	"sensitive_folded_objects": _derive_sensitive_folded_objects,
	"amount_fields_usable": _derive_amount_fields_usable,
	"amount_plain": _plain_keys_of(_amount_fields),
	"amount_fold": _fold_keys_of(_amount_fields),
	"blank_characters": {ch: true | some ch in _blank_set},
	"blocked_hosts": {host: true | some host in _derive_blocked_hosts},
}

# The stored value, when it was derived from the configured names. Compared
# with the configured lists themselves: a document that leaves one out (its
# default applies) gets the derivation. The adapters store the configured list
# and "from" as one value, which the module compares with itself at once.
_precomputed := stored if {
	stored := data.veto.derived
	stored.from.sensitive_fields == data.veto.config.sensitive_fields
	stored.from.amount_fields == data.veto.config.amount_fields
}

# Each derived value: stored, else derived for this evaluation.
_sensitive_fields_usable := value if {
	value := _precomputed.sensitive_fields_usable
} else := _derive_sensitive_fields_usable

_sensitive_star := value if {
	value := _precomputed.sensitive_star
} else := _derive_sensitive_star

# For the call's object only (sensitive.rego): derived, the lists of the other
# objects are not read.
_sensitive_object_keys := object.get(_precomputed.sensitive_objects, _call_object_key, {}) if {
	_precomputed
} else := _plain_keys_of([name |
	some object_name, names in _sensitive_fields
	_plain_key(trim_space(object_name)) == _call_object_key
	some name in names
])

_sensitive_folded_object_keys(folded) := object.get(_precomputed.sensitive_folded_objects, folded, {}) if {
	_precomputed
} else := _plain_keys_of([name |
	some object_name, names in _sensitive_fields
	_fold_key(trim_space(object_name)) == folded
	some name in names
])

_amount_fields_usable := value if {
	value := _precomputed.amount_fields_usable
} else := _derive_amount_fields_usable

_amount_plain := value if {
	value := _precomputed.amount_plain
} else := _plain_keys_of(_amount_fields)

_amount_fold := value if {
	value := _precomputed.amount_fold
} else := _fold_keys_of(_amount_fields)

# Not from the data document but a constant of the policy (unicode.rego): the
# WASM evaluator builds a set literal again for each call that reads it.
_blank_lookup := value if {
	value := _precomputed.blank_characters
} else := {ch: true | some ch in _blank_set}

# The hosts blocked_destinations names (destination.rego), read only for a
# call with a destination: so a guard of its own, not _precomputed's, which
# every call evaluates. Stored when "from" holds the configured list itself,
# as for the names above.
_blocked_lookup := value if {
	stored := data.veto.derived
	stored.from.blocked_destinations == data.veto.config.blocked_destinations
	value := stored.blocked_hosts
} else := {host: true | some host in _derive_blocked_hosts}

# The derivations. Keys are object members (key: true), not sets: a set
# becomes a list in JSON, and a member is found by its key in one lookup.
_plain_keys_of(names) := {_plain_key(name): true |
	some name in names
	is_string(name)
}

_fold_keys_of(names) := {_fold_key(name): true |
	some name in names
	is_string(name)
}

default _derive_sensitive_star := {}

_derive_sensitive_star := _plain_keys_of(_sensitive_fields["*"])

# By the plain key of the object name (surrounding white space ignored): the
# plain keys of every list configured for an object name with that key.
_derive_sensitive_objects[object_key] := _plain_keys_of([name |
	some other_name, names in _sensitive_fields
	_plain_key(trim_space(other_name)) == object_key
	some name in names
]) if {
	some object_name, _ in _sensitive_fields
	object_key := _plain_key(trim_space(object_name))
}

# The same by the fold key of the object name, for a call's object outside
# ASCII (sensitive.rego).
_derive_sensitive_folded_objects[object_key] := _plain_keys_of([name |
	some other_name, names in _sensitive_fields
	_fold_key(trim_space(other_name)) == object_key
	some name in names
]) if {
	some object_name, _ in _sensitive_fields
	object_key := _fold_key(trim_space(object_name))
}

default _derive_sensitive_fields_usable := false

_derive_sensitive_fields_usable if {
	is_object(_sensitive_fields)
	every names in _sensitive_fields {
		is_array(names)
	}
}

default _derive_amount_fields_usable := false

_derive_amount_fields_usable if {
	is_array(_amount_fields)
	every name in _amount_fields {
		is_string(name)
	}
}
