package veto.crm_test

import data.veto.crm

test_deny_blocked_destination_ipv6_literal if {
	config := object.union(fixture, {"blocked_destinations": ["[::1]", "[2001:DB8::]"]})
	every destination in [
		"https://[::1]:8443/path",
		"https://[0:0:0:0:0:0:0:1]/",
		"ssh://u@[0000::0001]:22",
		"[0::1]:80",
	] {
		call := to(destination)
		crm.decision == with_hosts(denied({"blocked_destination"}), ["[::1]"]) with input as call
			with data.veto.config as config
	}
	call := to("https://[2001:db8:0:0:0:0:0:0]/")
	crm.decision == with_hosts(denied({"blocked_destination"}), ["[2001:db8::]"]) with input as call
		with data.veto.config as config
}

test_allow_low_value_ipv6_canonical_form if {
	passes("https://[2001:DB8:0:0:1:0:0:1]/", ["[2001:db8::1:0:0:1]"])
	passes("https://[1:0:2:0:0:3:0:4]/", ["[1:0:2::3:0:4]"])
	passes("https://[1:2:3:4:5:6:7:8]/", ["[1:2:3:4:5:6:7:8]"])
	passes("https://[1:0:3:4:5:6:7:8]/", ["[1:0:3:4:5:6:7:8]"])
	passes("https://[::]/", ["[::]"])
	passes("https://[1::]:443/", ["[1::]"])
}

test_deny_blocked_destination_ipv6_unreadable if {
	blocked("https://[::ffff:1.2.3.4]/", ["[::ffff:1.2.3.4]"])
	blocked("https://[1::2::3]/", ["[1::2::3]"])
	blocked("https://[1:2:3:4:5:6:7]/", ["[1:2:3:4:5:6:7]"])
	blocked("https://[12345::1]/", ["[12345::1]"])
	blocked("https://[1::2:3:4:5:6:7:8]/", ["[1::2:3:4:5:6:7:8]"])
	blocked("https://[fe80::1%25eth0]/", ["[fe80::1%25eth0]"])
	blocked("https://[::1]x/", ["[::1]"])
	blocked("https://[::1]]/", ["[::1]"])
	blocked("https://[::1]:99999/", ["[::1]"])
	blocked("https://[::1/", ["[::1]"])
}

test_deny_blocked_destination_ipv4_literal if {
	config := object.union(fixture, {"blocked_destinations": ["10.0.0.1"]})
	call := to("http://10.0.0.1:8080/x")
	crm.decision == with_hosts(denied({"blocked_destination"}), ["10.0.0.1"]) with input as call
		with data.veto.config as config
}

# WHATWG and inet_aton read these as IPv4 addresses: only dotted decimal is read.
test_deny_blocked_destination_ipv4_other_forms if {
	blocked("https://10.1/", ["10.1"])
	blocked("http://0x7f.1/", ["0x7f.1"])
	blocked("http://2130706433/", ["2130706433"])
	blocked("http://010.0.0.1/", ["010.0.0.1"])
	blocked("http://1.2.3.256/", ["1.2.3.256"])
	blocked("http://1.2.3.4.5/", ["1.2.3.4.5"])
	blocked("sftp://hooks.example.0x/", ["hooks.example.0x"])
	blocked("ssh://1.2.3.1234", ["1.2.3.1234"])
}

test_deny_blocked_destination_ports if {
	blocked("https://hooks.example.com:99999/", ["hooks.example.com"])
	blocked("https://hooks.example.com:x/", ["hooks.example.com"])
	blocked("https://hooks.example.com:1:2/", ["hooks.example.com"])
}
