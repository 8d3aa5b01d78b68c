package veto.crm

# The policy checks what it can of the input contract (docs/contract.md §1)
# itself, so it stays safe when evaluated without the adapter. Each problem is a
# sentence; together they form the invalid_input message.
#
# In Rego, `not f(input.missing)` is undefined rather than true, so a negated
# check on an absent field would silently not fire. Every check therefore reads
# the call through the views below, which are always defined: a missing field
# reads as null, and a part of the wrong type as an empty object.
#
# The WASM evaluator evaluates every rule a decision reads once per call and
# looks it up again at each reference: each name checked below has a
# definition of its own with its whole message, so that no list of names is
# built and walked and no message is put together for a call.

default _raw_input := null

_raw_input := input

_call := _object_or_empty(_raw_input)

_arguments := _object_or_empty(object.get(_call, "arguments", null))

_context := _object_or_empty(object.get(_call, "context", null))

_object_or_empty(value) := value if is_object(value)

else := {}

_imprecise := " must have at most 15 significant digits and be 0 or between 1e-307 and 1e308 in magnitude"

_context_problems contains "input must be an object" if not is_object(_raw_input)

_context_problems contains "tool must be a non-empty string" if not _non_empty_string(object.get(_call, "tool", null))

_context_problems contains "context must be an object" if not is_object(object.get(_call, "context", null))

_context_problems contains "context.actorId must be a non-empty string" if {
	not _non_empty_string(object.get(_context, "actorId", null))
}

_context_problems contains "context.tenantId must be a non-empty string" if {
	not _non_empty_string(object.get(_context, "tenantId", null))
}

_context_problems contains "context.environment must be a non-empty string" if {
	not _non_empty_string(object.get(_context, "environment", null))
}

_context_problems contains "context.reason must be a string" if {
	value := _context.reason
	not is_string(value)
}

_context_problems contains "context.sourceSystem must be a string" if {
	value := _context.sourceSystem
	not is_string(value)
}

_context_problems contains "context.requestId must be a string" if {
	value := _context.requestId
	not is_string(value)
}

_context_problems contains "context.sessionId must be a string" if {
	value := _context.sessionId
	not is_string(value)
}

_context_problems contains "context.onBehalfOf must be a string" if {
	value := _context.onBehalfOf
	not is_string(value)
}

# The problems of the tool and the context alone make every call of the tool
# in that context invalid whatever its arguments (visible.rego).
_problems contains problem if some problem in _context_problems

_problems contains "arguments must be an object" if not is_object(object.get(_call, "arguments", null))

_problems contains "arguments.object must be a string" if {
	value := _arguments.object
	not is_string(value)
}

_problems contains "arguments.recordId must be a string" if {
	value := _arguments.recordId
	not is_string(value)
}

_problems contains "arguments.tenantId must be a string" if {
	value := _arguments.tenantId
	not is_string(value)
}

_problems contains "arguments.destination must be a string" if {
	value := _arguments.destination
	not is_string(value)
}

_problems contains "arguments.changes must be an object" if {
	value := _arguments.changes
	not is_object(value)
}

_problems contains "arguments.fields must be an array of strings" if {
	value := _arguments.fields
	not _string_array(value)
}

_problems contains "arguments.amount must be a finite number" if {
	value := _arguments.amount
	not is_number(value)
}

_problems contains concat("", ["arguments.changes.", name, " must be a finite number"]) if {
	some name, value in _amount_changes
	not is_number(value)
}

# docs/contract.md §9 "Amount precision" (amount.rego's _precise).
_problems contains concat("", ["arguments.amount", _imprecise]) if {
	value := _arguments.amount
	is_number(value)
	not _precise(value)
}

_problems contains concat("", ["arguments.changes.", name, _imprecise]) if {
	some name, value in _amount_changes
	is_number(value)
	not _precise(value)
}

_problems contains "history must be an object" if {
	value := _call.history
	not is_object(value)
}

_problems contains "history.recentDenies must be a non-negative integer" if {
	value := _call.history.recentDenies
	not _count(value)
}

_string_array(value) if {
	is_array(value)
	every item in value {
		is_string(item)
	}
}

# Bounded by 2^53 - 1: above it OPA's Go evaluator (arbitrary precision) and
# the WASM evaluator (doubles) disagree on whether floor(value) == value.
_count(value) if {
	is_number(value)
	value >= 0
	value <= 9007199254740991
	floor(value) == value
}
