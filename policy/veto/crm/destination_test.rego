package veto.crm_test

import data.veto.crm

export := patched(update, {"tool": "crm.export", "arguments": {"changes": {}}})

blocked(destination) if {
	decide(patched(export, {"arguments": {"destination": destination}})) == denied({"blocked_destination"})
}

passes(destination) if {
	decide(patched(export, {"arguments": {"destination": destination}})) == allowed("low_value")
}

test_deny_blocked_destination_host if {
	blocked("pastebin.com")
}

test_deny_blocked_destination_url if {
	blocked("https://pastebin.com/raw/abc")
	blocked("https://pastebin.com:443/x?y=1#z")
	blocked("http://user:pw@pastebin.com/")
	blocked("//pastebin.com/x")
}

test_deny_blocked_destination_subdomain if {
	blocked("https://eu.files.dropbox.com/upload")
}

test_deny_blocked_destination_case_and_trailing_dot if {
	blocked("HTTPS://PasteBin.COM./x")
	blocked("  dropbox.com..  ")
	blocked("transfer.sh")
}

test_deny_blocked_destination_email if {
	blocked("ana@gmail.com")
	blocked("mailto:Ana.Lopez@GMAIL.com")
	blocked("a@b@gmail.com")
}

test_deny_blocked_destination_host_without_scheme_with_path if {
	blocked("pastebin.com/raw/abc")
	blocked("pastebin.com?x=1")
}

test_deny_blocked_destination_userinfo_does_not_hide_host if {
	blocked("https://hooks.example.com@pastebin.com/x")
}

test_deny_blocked_destination_on_read if {
	call := patched(read, {"arguments": {"destination": "https://pastebin.com"}})
	decide(call) == denied({"blocked_destination"})
}

test_allow_low_value_look_alike_destinations if {
	passes("notdropbox.com")
	passes("https://dropbox.com.example.net/x")
	passes("https://pastebin.com.evil.example")
	passes("ana@notgmail.com")
	passes("https://hooks.example.com/x")
	passes("https://pastebin.com@hooks.example.com/")
	passes("https://[::1]:8443/path")
	passes("localhost:8080/hook")
	passes("https://hooks_1.example.com/x")
	passes("https://xn--mnchen-3ya.example/path-with-@-and-\u00fc")
}

test_deny_blocked_destination_ipv6_literal if {
	config := object.union(fixture, {"blocked_destinations": ["[::1]"]})
	call := patched(export, {"arguments": {"destination": "https://[::1]:8443/path"}})
	crm.decision == denied({"blocked_destination"}) with input as call with data.veto.config as config
}

test_allow_low_value_blank_blocked_entries_ignored if {
	config := object.union(fixture, {"blocked_destinations": ["", "  ", 7]})
	call := patched(export, {"arguments": {"destination": "https://hooks.example.com"}})
	crm.decision == allowed("low_value") with input as call with data.veto.config as config
}

# What a URL parser (WHATWG, as in fetch) reads as pastebin.com must not pass.
test_deny_blocked_destination_parser_tricks if {
	blocked("https:pastebin.com")
	blocked("https:/pastebin.com/x")
	blocked("https:\\\\pastebin.com")
	blocked("https://pastebin.com\\@hooks.example.com")
	blocked("user:pw@pastebin.com/x")
}

test_deny_blocked_destination_host_not_plain if {
	blocked("https://pastebin%2Ecom/x")
	blocked("https://paste\tbin.com/")
	blocked("https://pastebin\u3002com/")
	blocked("https://m\u00fcnchen.example/")
	blocked("https:///pastebin.com")
	blocked("")
	blocked("   ")
}

test_deny_blocked_destination_malformed_list_blocks_all if {
	config := object.union(fixture, {"blocked_destinations": "pastebin.com"})
	call := patched(export, {"arguments": {"destination": "https://hooks.example.com"}})
	crm.decision == denied({"blocked_destination"}) with input as call with data.veto.config as config
}

test_allow_low_value_no_destination_with_malformed_list if {
	config := object.union(fixture, {"blocked_destinations": {"pastebin.com": true}})
	crm.decision == allowed("low_value") with input as update with data.veto.config as config
}
