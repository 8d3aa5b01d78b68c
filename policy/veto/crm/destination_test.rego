package veto.crm_test

import data.veto.crm

export := patched(update, {"tool": "crm.export", "arguments": {"changes": {}}})

to(destination) := patched(export, {"arguments": {"destination": destination}})

blocked(destination, hosts) if {
	decide(to(destination)) == with_hosts(denied({"blocked_destination"}), hosts)
}

passes(destination, hosts) if {
	decide(to(destination)) == with_hosts(allowed("low_value"), hosts)
}

# A call of a tenant that lists allowed_destinations.
for_tenant(tenant, destination) := patched(export, {
	"context": {"tenantId": tenant},
	"arguments": {"tenantId": tenant, "destination": destination},
})

allowlisted_approvers := ["user:a@allowlisted.example"]

test_deny_blocked_destination_host if {
	blocked("pastebin.com", ["pastebin.com"])
}

test_deny_blocked_destination_url if {
	blocked("https://pastebin.com/raw/abc", ["pastebin.com"])
	blocked("https://pastebin.com:443/x?y=1#z", ["pastebin.com"])
	blocked("http://user:pw@pastebin.com/", ["pastebin.com"])
	blocked("//pastebin.com/x", ["pastebin.com"])
}

test_deny_blocked_destination_subdomain if {
	blocked("https://eu.files.dropbox.com/upload", ["eu.files.dropbox.com"])
}

test_deny_blocked_destination_case_and_trailing_dot if {
	blocked("HTTPS://PasteBin.COM./x", ["pastebin.com"])
	blocked("  dropbox.com..  ", ["dropbox.com"])
	blocked("transfer.sh", ["transfer.sh"])
	blocked("Https://pastebin.com", ["pastebin.com"])
}

test_deny_blocked_destination_email if {
	blocked("ana@gmail.com", ["gmail.com"])
	blocked("mailto:Ana.Lopez@GMAIL.com", ["gmail.com"])
	blocked("MAILTO:ana@gmail.com", ["gmail.com"])
	blocked("a@b@gmail.com", ["b", "gmail.com"])
	blocked("a@gmail.com@hooks.example.com", ["gmail.com", "hooks.example.com"])
}

test_deny_blocked_destination_host_without_scheme_with_path if {
	blocked("pastebin.com/raw/abc", ["pastebin.com"])
	blocked("pastebin.com?x=1", ["pastebin.com"])
	blocked("pastebin.com:443", ["pastebin.com"])
	blocked("pastebin.com:443/x", ["pastebin.com"])
}

test_deny_blocked_destination_userinfo_does_not_hide_host if {
	blocked("https://hooks.example.com@pastebin.com/x", ["pastebin.com"])
	blocked("https://a@hooks.example.com@pastebin.com/x", ["pastebin.com"])
	blocked("https://u:p@ss@pastebin.com:8443/x", ["pastebin.com"])
}

# The host is the one before the path: a "://" or "@" later in the path, query
# or fragment names no host.
test_deny_blocked_destination_authority_in_path_query_or_fragment if {
	blocked("pastebin.com/x?u=https://hooks.example.com", ["pastebin.com"])
	blocked("pastebin.com#://hooks.example.com", ["pastebin.com"])
	blocked("pastebin.com/a://hooks.example.com/", ["pastebin.com"])
	blocked("pastebin.com?next=a@hooks.example.com", ["pastebin.com"])
	blocked("https://pastebin.com/x?u=https://hooks.example.com", ["pastebin.com"])
	blocked("https://pastebin.com#https://hooks.example.com", ["pastebin.com"])
	blocked("sftp://pastebin.com/x?u=sftp://hooks.example.com", ["pastebin.com"])
	blocked("ana@gmail.com?x=https://hooks.example.com", ["gmail.com"])
}

test_allow_low_value_authority_in_path_query_or_fragment if {
	passes("https://hooks.example.com/x?u=https://pastebin.com", ["hooks.example.com"])
	passes("https://hooks.example.com/#@pastebin.com", ["hooks.example.com"])
	passes("hooks.example.com/x?u=sftp://pastebin.com", ["hooks.example.com"])
}

# Non-special schemes: "\" is a character of the authority, so the host is
# after the "@"; read as "/" too, the part before it counts as well.
test_deny_blocked_destination_backslash_in_non_special_authority if {
	blocked("sftp://hooks.example.com\\@pastebin.com/x", ["hooks.example.com", "pastebin.com"])
	blocked("SSH://hooks.example.com\\@pastebin.com", ["hooks.example.com", "pastebin.com"])
	blocked("s3://bucket.example\\b@pastebin.com:9/x", ["bucket.example", "pastebin.com"])
	blocked("git+ssh://git@hooks.example.com\\@pastebin.com/repo", ["hooks.example.com", "pastebin.com"])
	blocked("smtp://pastebin.com\\@hooks.example.com", ["hooks.example.com", "pastebin.com"])
}

test_allow_low_value_non_special_schemes if {
	passes("sftp://user:pw@files.example.net:22/in", ["files.example.net"])
	passes("s3://hooks.example.com/bucket", ["hooks.example.com"])
	passes("git+ssh://git@hooks.example.com/repo.git", ["hooks.example.com"])
}

test_deny_blocked_destination_non_special_scheme if {
	blocked("sftp://pastebin.com/in", ["pastebin.com"])
	blocked("smtp://relay@gmail.com", ["gmail.com"])
}

test_deny_blocked_destination_lists if {
	blocked("a@hooks.example.com, b@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("a@hooks.example.com;b@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("hooks.example.com pastebin.com", ["hooks.example.com", "pastebin.com"])
	blocked("https://hooks.example.com/x,https://pastebin.com/y", ["hooks.example.com", "pastebin.com"])
	blocked("https://hooks.example.com/x?a=1,pastebin.com", ["hooks.example.com", "pastebin.com"])
}

test_allow_low_value_lists if {
	passes("a@hooks.example.com, b@files.example.net;", ["files.example.net", "hooks.example.com"])
}

test_deny_blocked_destination_on_read if {
	call := patched(read, {"arguments": {"destination": "https://pastebin.com"}})
	decide(call) == with_hosts(denied({"blocked_destination"}), ["pastebin.com"])
}

test_allow_low_value_look_alike_destinations if {
	passes("notdropbox.com", ["notdropbox.com"])
	passes("https://dropbox.com.example.net/x", ["dropbox.com.example.net"])
	passes("https://pastebin.com.evil.example", ["pastebin.com.evil.example"])
	passes("ana@notgmail.com", ["notgmail.com"])
	passes("https://hooks.example.com/x", ["hooks.example.com"])
	passes("https://pastebin.com@hooks.example.com/", ["hooks.example.com"])
	passes("https://[::1]:8443/path", ["[::1]"])
	passes("localhost:8080/hook", ["localhost"])
	passes("https://hooks_1.example.com/x", ["hooks_1.example.com"])
	passes("https://xn--mnchen-3ya.example/path-with-@-and-\u00fc", ["xn--mnchen-3ya.example"])
	passes("https://hooks.example.com:/x", ["hooks.example.com"])
	passes("http://192.168.0.10:8080/in", ["192.168.0.10"])
	passes("wss://hooks.example.com/socket", ["hooks.example.com"])
	passes("ftp://files.example.net/in", ["files.example.net"])
	passes("file://files.example.net/share/x", ["files.example.net"])
	passes("file:\\\\files.example.net\\share", ["files.example.net"])
	passes("file://[::1]/share", ["[::1]"])
}

test_allow_low_value_blank_blocked_entries_ignored if {
	config := object.union(fixture, {"blocked_destinations": ["", "  ", 7]})
	call := to("https://hooks.example.com")
	crm.decision == with_hosts(allowed("low_value"), ["hooks.example.com"]) with input as call
		with data.veto.config as config
}

test_deny_blocked_destination_entries_written_as_urls if {
	config := object.union(fixture, {"blocked_destinations": ["https://Hooks.Example.com/x", "ops@files.example.net"]})
	every destination in ["hooks.example.com", "a.files.example.net"] {
		call := to(destination)
		crm.decision == with_hosts(denied({"blocked_destination"}), [destination]) with input as call
			with data.veto.config as config
	}
}

# What a URL parser (WHATWG, as in fetch) reads as pastebin.com must not pass.
test_deny_blocked_destination_parser_tricks if {
	blocked("https:pastebin.com", ["pastebin.com"])
	blocked("https:/pastebin.com/x", ["pastebin.com"])
	blocked("https:\\\\pastebin.com", ["pastebin.com"])
	blocked("https://pastebin.com\\@hooks.example.com", ["hooks.example.com", "pastebin.com"])
	blocked("https://hooks.example.com\\@pastebin.com", ["hooks.example.com", "pastebin.com"])
	blocked("pastebin.com\\@hooks.example.com", ["hooks.example.com", "pastebin.com"])
	blocked("user:pw@pastebin.com/x", [])
}

test_deny_blocked_destination_host_not_plain if {
	blocked("https://pastebin%2Ecom/x", ["pastebin%2ecom"])
	blocked("https://pastebin\u3002com/", ["pastebin\u3002com"])
	blocked("https://m\u00fcnchen.example/", ["m\u00fcnchen.example"])
	blocked("https:///pastebin.com", ["", "pastebin.com"])
	blocked("https://hooks..example.com/", ["hooks..example.com"])
	blocked("https://.hooks.example.com/", [".hooks.example.com"])
	blocked("https://@/", [""])
	blocked("a%40pastebin.com@hooks.example.com", ["hooks.example.com"])
	blocked("", [])
	blocked("   ", [])
	blocked(" ,; ", [])
}

# A WHATWG parser drops tabs and newlines anywhere; other parsers do not.
test_deny_blocked_destination_control_characters if {
	blocked("https://hooks.example.com/\tx", [])
	blocked("https://paste\tbin.com/", [])
	blocked("hooks.example.com\n", [])
	blocked("hooks.example.com\r\npastebin.com", [])
	blocked("hooks.example.com\u0000", [])
	blocked("hooks.example.com\u007f", [])
}

# A scheme with no authority names no host a parser agrees on.
test_deny_blocked_destination_scheme_without_authority if {
	blocked("sftp:pastebin.com", [])
	blocked("urn:isbn:0451450523", [])
	blocked("hooks.example.com:", [])
	blocked("javascript:alert(1)", [])
}

test_deny_blocked_destination_file_without_remote_host if {
	blocked("file:///etc/passwd", [""])
	blocked("file://localhost/x", ["", "localhost"])
	blocked("file:pastebin.com", [""])
	blocked("file://files.example.net:8443/x", ["files.example.net"])
}

test_deny_blocked_destination_malformed_list_blocks_all if {
	config := object.union(fixture, {"blocked_destinations": "pastebin.com"})
	call := to("https://hooks.example.com")
	crm.decision == with_hosts(denied({"blocked_destination"}), ["hooks.example.com"]) with input as call
		with data.veto.config as config
}

test_allow_low_value_no_destination_with_malformed_list if {
	config := object.union(fixture, {"blocked_destinations": {"pastebin.com": true}})
	crm.decision == allowed("low_value") with input as update with data.veto.config as config
}

test_deny_invalid_input_lists_destination_hosts if {
	call := patched(to("https://pastebin.com/x"), {"context": {"environment": 7}})
	decide(call) == with_hosts(invalid({"context.environment must be a non-empty string"}), ["pastebin.com"])
}

test_deny_escalated_lists_destination_hosts if {
	call := patched(to("a@hooks.example.com,b@files.example.net"), {"history": {"recentDenies": 3}})
	decide(call) == with_hosts(escalated, ["files.example.net", "hooks.example.com"])
}

# allowed_destinations: hosts and their subdomains; entries that are not host
# names ("", "*.wild.example", "10.1") allow nothing.
test_allow_low_value_allowed_destinations if {
	every destination, hosts in {
		"https://hooks.example.com/x": ["hooks.example.com"],
		"https://eu.Example.org./x": ["eu.example.org"],
		"a@example.org, b@hooks.example.com": ["example.org", "hooks.example.com"],
		"mailto:a@example.org?cc=b@hooks.example.com": ["example.org", "hooks.example.com"],
		"http://[::1]:8080/": ["[::1]"],
		"https://10.0.0.1/": ["10.0.0.1"],
		"sftp://files.example.net/in": ["files.example.net"],
	} {
		decide(for_tenant("allowlisted", destination)) == with_hosts(allowed("low_value"), hosts)
	}
}

test_deny_destination_not_allowed if {
	every destination, hosts in {
		"https://other.example/x": ["other.example"],
		"https://example.org.evil.example/": ["example.org.evil.example"],
		"https://notexample.org/": ["notexample.org"],
		"a@example.org, b@other.example": ["example.org", "other.example"],
		"mailto:a@example.org?bcc=b@other.example": ["example.org", "other.example"],
		"https://hooks.example.com\\@other.example": ["hooks.example.com", "other.example"],
		"https://wild.example/": ["wild.example"],
		"https://x.wild.example/": ["x.wild.example"],
		"https://10.0.0.2/": ["10.0.0.2"],
		"https://example.com/": ["example.com"],
	} {
		decide(for_tenant("allowlisted", destination)) == with_hosts(denied({"destination_not_allowed"}), hosts)
	}
}

test_deny_destination_not_allowed_and_blocked if {
	call := for_tenant("allowlisted", "https://pastebin.com/x")
	decide(call) == with_hosts(denied({"blocked_destination", "destination_not_allowed"}), ["pastebin.com"])
}

test_deny_destination_not_allowed_unreadable if {
	call := for_tenant("allowlisted", "https://hooks.example.com/\tx")
	decide(call) == with_hosts(denied({"blocked_destination", "destination_not_allowed"}), [])
}

test_deny_destination_not_allowed_malformed_list if {
	every tenant in ["allowlisted_malformed", "allowlisted_not_a_list", "allowlisted_empty"] {
		call := for_tenant(tenant, "https://hooks.example.com/x")
		decide(call) == with_hosts(denied({"destination_not_allowed"}), ["hooks.example.com"])
	}
}

test_allow_low_value_allowed_destinations_without_destination if {
	call := json.remove(for_tenant("allowlisted_not_a_list", ""), ["arguments/destination"])
	decide(call) == allowed("low_value")
}

test_require_approval_allowed_destination if {
	call := patched(for_tenant("allowlisted", "https://hooks.example.com/x"), {"arguments": {"fields": ["ssn"]}})
	decide(call) == with_hosts(
		expect("require_approval", false, {"sensitive_field"}, allowlisted_approvers),
		["hooks.example.com"],
	)
}

# Reading a destination is bounded: longer than 8,192 characters, it is not read.
test_deny_blocked_destination_too_long if {
	prefix := "https://hooks.example.com/"
	fits := concat("", [prefix, concat("", ["a" | some _ in numbers.range(1, 8192 - count(prefix))])])
	passes(fits, ["hooks.example.com"])
	blocked(concat("", [fits, "a"]), [])
}

# DNS names are at most 253 characters.
test_deny_blocked_destination_host_too_long if {
	label := concat("", ["a" | some _ in numbers.range(1, 61)])
	host := concat(".", [label, label, label, label, "example"])
	blocked(concat("", ["https://", host, "/"]), [host])
	passes(concat("", ["https://", substring(host, 4, -1), "/"]), [substring(host, 4, -1)])
}
