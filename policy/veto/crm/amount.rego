package veto.crm

# amount: the largest absolute value among arguments.amount and the changed
# amount fields. Values that are not numbers make the input invalid (input.rego)
# and are never compared here: Rego orders "9000" above any number.
#
# A key of `changes` is an amount field when it matches an entry of
# amount_fields under the one case-folding rule (text.rego): "Amount" is
# "amount", as CRMs name it, and "DİSCOUNT_AMOUNT" is "discount_amount". When
# amount_fields is not a list of strings, every numeric change counts.

# The plain and fold keys of amount_fields, and whether it is a list of
# strings: derived.rego.
_amount_field(name) if _amount_plain[lower(name)]

_amount_field(name) if {
	not _ascii(name)
	_amount_fold[_fold_key(name)]
}

_amount_changes[name] := value if {
	is_object(_arguments.changes)
	some name, value in _arguments.changes
	_amount_field(name)
}

_amount_changes[name] := value if {
	is_object(_arguments.changes)
	not _amount_fields_usable
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

# docs/contract.md §9 "Amount precision": an amount is refused (input.rego) when
# its JSON text has more than 15 significant digits, or when it is neither zero
# nor between 1e-307 and 1e308 in magnitude. Within those bounds an amount is
# exactly one double, so OPA's evaluator (arbitrary precision), the WASM
# evaluator and the adapter (doubles) compare the same number against the
# limits. The policy reads the number's own text: json.marshal gives it back
# verbatim on both evaluators.
#
# Nearly every amount is short and plain ("13948", "-250.5"): a text of at most
# 15 characters without an exponent has at most 15 significant digits and is 0
# or between 1e-13 and 1e15 in magnitude, so it is precise without being taken
# apart.
_precise(value) if {
	text := json.marshal(value)
	count(text) <= 15
	trim(text, "-.0123456789") == ""
} else if {
	_significant_digits(value) == ""
} else if {
	count(_significant_digits(value)) <= 15
	exponent := _decimal_exponent(value)
	exponent >= -307
	exponent <= 307
}

# The parts of a number's JSON text, -?INT(.FRAC)?(e[+-]?EXP)?, without the sign.
_number_text(value) := {
	"int": mantissa[0],
	"frac": concat("", array.slice(mantissa, 1, 2)),
	"exp": concat("", array.slice(halves, 1, 2)),
} if {
	halves := split(lower(trim_prefix(json.marshal(value), "-")), "e")
	mantissa := split(halves[0], ".")
}

# The digits from the first to the last that is not zero ("" for zero).
_significant_digits(value) := trim_right(trim_left(concat("", [parts.int, parts.frac]), "0"), "0") if {
	parts := _number_text(value)
}

# The power of ten of the first significant digit: 1.5e3 is 3, 0.025 is -2.
_decimal_exponent(value) := (_exponent(parts.exp) + count(parts.int)) - (1 + leading_zeros) if {
	parts := _number_text(value)
	digits := concat("", [parts.int, parts.frac])
	leading_zeros := count(digits) - count(trim_left(digits, "0"))
}

# The exponent of the text as a number; undefined beyond four digits (out of
# range whatever the mantissa), so such an amount is never precise.
_exponent(text) := 0 if trim_left(trim_left(text, "+-"), "0") == ""

_exponent(text) := to_number(digits) if {
	digits := trim_left(trim_left(text, "+-"), "0")
	digits != ""
	count(digits) <= 4
	not startswith(text, "-")
}

_exponent(text) := 0 - to_number(digits) if {
	digits := trim_left(trim_left(text, "+-"), "0")
	digits != ""
	count(digits) <= 4
	startswith(text, "-")
}
