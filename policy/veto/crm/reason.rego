package veto.crm

_deny contains "missing_reason" if {
	_write
	not _non_empty_string(object.get(_context, "reason", null))
}
