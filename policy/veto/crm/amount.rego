package veto.crm

# amount: the largest absolute value among arguments.amount and the changed
# amount fields. Values that are not numbers make the input invalid (input.rego)
# and are never compared here: Rego orders "9000" above any number.
#
# A key of `changes` is an amount field when it matches an entry of
# amount_fields under the one case-folding rule (text.rego): "Amount" is
# "amount", as CRMs name it, and "DİSCOUNT_AMOUNT" is "discount_amount". When
# amount_fields is not a list of strings, every numeric change counts.

_amount_plain_keys contains _plain_key(name) if {
	some name in _amount_fields
	is_string(name)
}

_amount_fold_keys contains _fold_key(name) if {
	some name in _amount_fields
	is_string(name)
}

_amount_field(name) if lower(name) in _amount_plain_keys

_amount_field(name) if {
	not _plain_names
	_fold_key(name) in _amount_fold_keys
}

default _amount_fields_usable := false

_amount_fields_usable if {
	is_array(_amount_fields)
	every name in _amount_fields {
		is_string(name)
	}
}

_amount_changes[name] := value if {
	is_object(_arguments.changes)
	some name, value in _arguments.changes
	_amount_field(name)
}

_amount_changes[name] := value if {
	not _amount_fields_usable
	is_object(_arguments.changes)
	some name, value in _arguments.changes
	is_number(value)
}

_amount_values contains abs(value) if {
	value := _arguments.amount
	is_number(value)
}

_amount_values contains abs(value) if {
	some value in _amount_changes
	is_number(value)
}

default _amount := 0

_amount := max(_amount_values) if count(_amount_values) > 0

# A max_amount that is present but not a number acts as the strictest limit.
_deny contains "amount_over_limit" if {
	_write
	limit := _tenant.max_amount
	not _at_most(_amount, limit)
}

_at_most(amount, limit) if {
	is_number(limit)
	amount <= limit
}

# An approval_threshold that is present but not a number acts as zero.
_approval contains "production_amount" if {
	_write
	_context.environment == "production"
	threshold := _tenant.approval_threshold
	not _below(_amount, threshold)
}

_below(amount, threshold) if {
	is_number(threshold)
	amount < threshold
}
