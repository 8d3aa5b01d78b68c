package veto.crm_test

test_deny_blocked_destination_mailto_recipients if {
	blocked("mailto:a@hooks.example.com,b@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com?to=b@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com?CC=b@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com?subject=hi&Bcc=b@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("mailto:?to=a@hooks.example.com&cc=b@gmail.com", ["gmail.com", "hooks.example.com"])
	three := ["files.example.net", "gmail.com", "hooks.example.com"]
	blocked("mailto:a@hooks.example.com?to=b@files.example.net,c@gmail.com", three)
	blocked("mailto:a@hooks.example.com&cc=b@gmail.com", ["gmail.com", "hooks.example.com&cc=b"])
	query_in_value := ["files.example.net?cc=c", "gmail.com", "hooks.example.com"]
	blocked("mailto:a@hooks.example.com?cc=b@files.example.net?cc=c@gmail.com", query_in_value)
}

# A mail client reads the addresses after a "," of a mailto, and the fields
# after them, as the mailto's own.
test_deny_blocked_destination_mailto_list_with_fields if {
	three := ["files.example.net", "gmail.com", "hooks.example.com"]
	blocked("mailto:a@hooks.example.com,b@files.example.net?to=c%40gmail.com", three)
	four := ["example.org", "files.example.net", "gmail.com", "hooks.example.com"]
	blocked("a@hooks.example.com, MAILTO:b@files.example.net;c@example.org?cc=d@gmail.com", four)
}

test_allow_low_value_mailto_and_a_url if {
	passes("mailto:a@hooks.example.com, https://files.example.net/", ["files.example.net", "hooks.example.com"])
}

test_allow_low_value_mailto_in_a_query if {
	passes("https://hooks.example.com/?q=mailto:a@gmail.com", ["hooks.example.com"])
	three := ["example.org", "files.example.net", "hooks.example.com"]
	passes(" mailto:a@hooks.example.com,b@example.org?cc=c@files.example.net", three)
}

test_deny_blocked_destination_mailto_percent_escapes if {
	blocked("mailto:?to=a%40gmail.com", ["gmail.com"])
	blocked("mailto:a@hooks.example.com%2Cb@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com%3bb@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com?%74o=b@gmail.com", ["gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com?to=b%40gmail%2Ecom", ["gmail.com", "hooks.example.com"])
	blocked("mailto:a@gmail%2ecom", ["gmail.com"])
}

test_allow_low_value_mailto if {
	passes("mailto:a@hooks.example.com", ["hooks.example.com"])
	passes("mailto:a@hooks.example.com?subject=Hello%20there&body=x@gmail.com", ["hooks.example.com"])
	passes("mailto:?To=a%40hooks.example.com&", ["hooks.example.com"])
	passes("mailto:a@hooks.example.com?reply-to=b@files.example.net", ["hooks.example.com"])
}

# What a mail client might read differently is unreadable, so blocked.
test_deny_blocked_destination_mailto_unreadable if {
	blocked("mailto:", [])
	blocked("mailto:?subject=x", [])
	blocked("mailto:hooks.example.com", [])
	blocked("mailto:?to=a%2540hooks.example.com", [])
	blocked("mailto:?to=a%0a@hooks.example.com", [])
	blocked("mailto:?to=a@hooks.example.com%", [])
	blocked("mailto:a@hooks.example.com?t%6F%20=b@gmail.com", ["hooks.example.com"])
	blocked("mailto:a@hooks.example.com?%zzto=b@files.example.net", ["hooks.example.com"])
	blocked("mailto:a@hooks.example.com?to%3D=b", ["hooks.example.com"])
	blocked("mailto:a@hooks.example.com?=b@files.example.net", ["hooks.example.com"])
}

# After a "," of a mailto the rest of its address list is its own item: read
# as addresses up to the "?" or "&" of the fields, every part after an "@".
test_allow_low_value_mailto_address_lists_with_fields if {
	two := ["example.org", "hooks.example.com"]
	passes("mailto:?to=a@hooks.example.com,b@example.org&subject=Report", two)
	passes("mailto:a@hooks.example.com,b@example.org?subject=Report", two)
	passes("mailto:?cc=a@hooks.example.com,b%40example.org&subject=Report", two)
	three := ["example.org", "files.example.net", "hooks.example.com"]
	passes("mailto:a@hooks.example.com,b@example.org?cc=c@files.example.net", three)
}

test_deny_blocked_destination_mailto_address_list_continuation if {
	blocked("mailto:a@hooks.example.com,b@example.org&x=1@gmail.com", ["example.org", "gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com,b@example.org?body=x@gmail.com", ["example.org", "gmail.com", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com, files.example.net", ["hooks.example.com"])
	blocked("mailto:a@hooks.example.com, b@example.org/x", ["example.org/x", "hooks.example.com"])
	blocked("mailto:a@hooks.example.com, b%zz@example.org", ["hooks.example.com"])
	blocked("mailto:a@hooks.example.com, sftp://x\\@gmail.com", ["gmail.com", "hooks.example.com", "x"])
}

test_deny_blocked_destination_mailto_continuation_read_as_it_is if {
	blocked("mailto:a@hooks.example.com,b@example%2Eorg", ["example%2eorg", "example.org", "hooks.example.com"])
}
