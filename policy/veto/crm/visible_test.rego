package veto.crm_test

import data.veto.crm

# Visibility is asked with the tool and the context only.
query(call) := {"tool": call.tool, "context": call.context}

see(q) := result if {
	# regal ignore:with-outside-test-context,external-reference
	result := crm.visible with input as q with data.veto.config as fixture
}

shown := {"visible": true, "reasons": []}

hidden(codes) := {
	"visible": false,
	"reasons": [{"code": code, "message": crm.reason_codes[code].message} | some code in sort(codes)],
}

test_visible_read_and_write_tools if {
	see(query(read)) == shown
	see(query(update)) == shown
	see(query(patched(update, {"tool": "crm.export"}))) == shown
}

test_visible_write_without_reason if {
	see(query(json.remove(update, ["context/reason"]))) == shown
}

test_visible_whatever_the_arguments if {
	# Arguments that the decision denies do not hide the tool: they are per call.
	see(patched(query(update), {"arguments": {"tenantId": "globex", "destination": "https://pastebin.com/x"}})) == shown
}

test_hidden_unknown_tool if {
	see(query(patched(update, {"tool": "crm.merge"}))) == hidden({"unknown_tool"})
	see(query(patched(update, {"tool": "crm.admin"}))) == hidden({"unknown_tool"})
}

test_hidden_unknown_tenant if {
	see(query(patched(update, {"context": {"tenantId": "umbrella"}}))) == hidden({"unknown_tenant"})
}

test_hidden_actor_not_allowed if {
	see(query(patched(update, {"context": {"actorId": "agent:rogue"}}))) == hidden({"actor_not_allowed"})
}

test_hidden_unknown_environment if {
	see(query(patched(update, {"context": {"environment": "prod"}}))) == hidden({"unknown_environment"})
}

test_hidden_every_reason_sorted if {
	q := query(patched(update, {"tool": "crm.merge", "context": {"environment": "qa", "actorId": "agent:rogue"}}))
	see(q) == hidden({"actor_not_allowed", "unknown_environment", "unknown_tool"})
}

test_hidden_invalid_context if {
	see({"tool": "crm.read", "context": {"actorId": " ", "tenantId": "globex", "environment": "production"}}) == {
		"visible": false,
		"reasons": [{
			"code": "invalid_input",
			"message": concat("", [crm.reason_codes.invalid_input.message, ": context.actorId must be a non-empty string"]),
		}],
	}
}

test_hidden_not_an_object if {
	result := see("crm.read")
	result.visible == false
	codes := [reason.code | some reason in result.reasons]
	codes == ["invalid_input", "unknown_environment", "unknown_tenant", "unknown_tool"]
}

test_hidden_context_field_of_wrong_type if {
	result := see(patched(query(read), {"context": {"reason": 7}}))
	result.reasons == [{
		"code": "invalid_input",
		"message": concat("", [crm.reason_codes.invalid_input.message, ": context.reason must be a string"]),
	}]
}

# Hidden means denied: for every tool and context the fixture can name, a
# hidden tool's calls are denied, with or without arguments that would
# otherwise be allowed.
test_hidden_means_denied if {
	tools := ["crm.read", "crm.update", "crm.merge", "crm.admin"]
	contexts := [
		update.context,
		object.union(update.context, {"tenantId": "umbrella"}),
		object.union(update.context, {"actorId": "agent:rogue"}),
		object.union(update.context, {"environment": "qa"}),
		object.union(update.context, {"tenantId": "globex", "actorId": "agent:any"}),
	]
	every tool in tools {
		every context in contexts {
			_hidden_is_denied(tool, context)
		}
	}
}

_hidden_is_denied(tool, context) if {
	see({"tool": tool, "context": context}).visible
}

_hidden_is_denied(tool, context) if {
	not see({"tool": tool, "context": context}).visible
	every arguments in [{}, update.arguments, read.arguments] {
		decide({"tool": tool, "arguments": arguments, "context": context}).action == "deny"
	}
}
