package veto.crm

_deny contains "unknown_environment" if not object.get(_context, "environment", null) in _environments
