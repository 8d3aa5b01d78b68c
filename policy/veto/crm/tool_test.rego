package veto.crm_test

import data.veto.crm

test_allow_read_only if {
	decide(read) == allowed("read_only")
}

test_allow_read_only_search_without_arguments if {
	decide(patched(read, {"tool": "crm.search", "arguments": {}})) == allowed("read_only")
}

test_allow_low_value if {
	decide(update) == allowed("low_value")
}

test_deny_unknown_tool if {
	decide(patched(update, {"tool": "crm.merge"})) == denied({"unknown_tool"})
}

test_deny_unknown_tool_without_valid_kind if {
	decide(patched(update, {"tool": "crm.admin"})) == denied({"unknown_tool"})
	decide(patched(update, {"tool": "crm.nokind"})) == denied({"unknown_tool"})
}

test_deny_unknown_tool_when_no_tools_configured if {
	config := json.remove(fixture, ["tools"])
	crm.decision == denied({"unknown_tool"}) with input as read with data.veto.config as config
}

test_deny_unknown_tool_without_data_document if {
	crm.decision == denied({"unknown_environment", "unknown_tenant", "unknown_tool"}) with input as read
		with data.veto.config as "not an object"
}
