package veto.crm

_tenant := tenant if {
	tenant := _tenants[_context.tenantId]
	is_object(tenant)
}

_deny contains "unknown_tenant" if not _tenant

_deny contains "wrong_tenant" if {
	target := _arguments.tenantId
	target != _context.tenantId
}

# A tenant that lists actors admits only them; a malformed list admits no one.
_deny contains "actor_not_allowed" if {
	actors := _tenant.actors
	not _listed(object.get(_context, "actorId", null), actors)
}

_deny contains "no_approver" if {
	is_object(_tenant)
	count(_approval) > 0
	count(_approvers) == 0
}

# The actor is never its own approver, so it is left out of the list a
# require_approval answer names; a tenant whose only approver is the actor has
# no approver for this call.
default _approvers := []

_approvers := [approver |
	some approver in _tenant.approvers
	_non_empty_string(approver)
	approver != _context.actorId
] if {
	is_array(_tenant.approvers)
}

_listed(value, list) if {
	is_array(list)
	value in list
}
