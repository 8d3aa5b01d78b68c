package veto.crm

# METADATA
# title: Visibility
# description: >-
#   Whether a tool is offered at all to an actor in a context (docs/contract.md
#   §4b): hidden when every call of it would be denied whatever its arguments,
#   for a reason that reads nothing but the tool and the context (an unknown
#   tool, tenant or environment, an actor the tenant does not admit) or because
#   the tool or the context breaks the input contract. Its input is
#   `{tool, context}`. An MCP proxy leaves hidden tools out of `tools/list`;
#   every call is still decided by `decision`, which denies a hidden tool's.
# entrypoint: true
visible := {
	"visible": count(_hidden) == 0,
	"reasons": [{"code": code, "message": _hidden_message(code)} | some code in sort(_hidden)],
}

# The deny reasons whose rules read only the tool and the context: no
# argument can lift them. Reasons that read the arguments (wrong_tenant, a
# destination, an amount) or a per-call field (missing_reason) never hide a tool.
_context_denies := {"unknown_tool", "unknown_tenant", "actor_not_allowed", "unknown_environment"}

_hidden contains code if {
	some code in _deny
	code in _context_denies
}

_hidden contains "invalid_input" if count(_context_problems) > 0

_hidden_message("invalid_input") := concat("", [
	reason_codes.invalid_input.message, ": ",
	concat("; ", sort(_context_problems)),
])

_hidden_message(code) := reason_codes[code].message if code != "invalid_input"
