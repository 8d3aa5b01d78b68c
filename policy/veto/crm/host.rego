package veto.crm

# Hosts of destinations (docs/contract.md §3 "destination hosts", §9): a
# "host[:port]" text read as a host name, an IPv4 address in dotted decimal or
# an IPv6 literal; anything else is not a host the policy can compare.

_port(value) if {
	value != ""
	trim(value, "0123456789") == ""
	to_number(value) <= 65535
}

# The host of a "host[:port]" text: lower-cased, trailing dots removed, an
# IPv6 literal in its canonical form (RFC 5952, as WHATWG serializes it).
_host_name(host_port) := concat("", ["[", _ipv6_text(_ipv6_groups(_ipv6_inner(host_port))), "]"]) if {
	startswith(host_port, "[")
	_ipv6_groups(_ipv6_inner(host_port))
} else := concat("", ["[", _ipv6_inner(host_port), "]"]) if {
	startswith(host_port, "[")
} else := trim_right(lower(split(host_port, ":")[0]), ".")

_host_valid(host_port) if {
	startswith(host_port, "[")
	_ipv6_groups(_ipv6_inner(host_port))
	parts := split(host_port, "]")
	count(parts) == 2
	_port_suffix(parts[1])
}

_host_valid(host_port) if {
	not startswith(host_port, "[")
	parts := split(host_port, ":")
	count(parts) <= 2
	_port_suffix(trim_prefix(host_port, parts[0]))
	_domain_valid(_host_name(host_port))
}

_port_suffix(suffix) if suffix in {"", ":"}

_port_suffix(suffix) if _port(trim_prefix(suffix, ":"))

_domain_valid(host) if {
	host != ""
	count(host) <= 253
	trim(host, _host_characters) == ""
	not startswith(host, ".")
	not contains(host, "..")
	not _ends_in_number(host)
}

_domain_valid(host) if {
	labels := split(host, ".")
	count(labels) == 4
	every label in labels {
		_octet(label)
	}
}

# WHATWG reads a host whose last label is a number ("10.1", "0x7f.1",
# "2130706433") as an IPv4 address, and inet_aton agrees: only dotted decimal
# compares reliably, every other form is unreadable.
_ends_in_number(host) if {
	labels := split(host, ".")
	_number(labels[count(labels) - 1])
}

_number(label) if {
	label != ""
	trim(label, "0123456789") == ""
}

_number(label) if {
	startswith(label, "0x")
	trim(substring(label, 2, -1), "0123456789abcdef") == ""
}

_octet(label) if {
	label != ""
	trim(label, "0123456789") == ""
	count(label) <= 3
	to_number(label) <= 255
	not _leading_zero(label)
}

_leading_zero(label) if {
	startswith(label, "0")
	label != "0"
}

_ipv6_inner(host_port) := lower(trim_prefix(split(host_port, "]")[0], "["))

# The eight groups of an IPv6 address, leading zeros removed; undefined when
# it is not one. Embedded IPv4 ("::ffff:1.2.3.4") and zones are not read.
_ipv6_groups(inner) := [_hex_group(group) | some group in groups] if {
	trim(inner, "0123456789abcdef:") == ""
	not contains(inner, "::")
	groups := split(inner, ":")
	count(groups) == 8
	every group in groups {
		_hex4(group)
	}
} else := array.flatten([left, _zero_groups((8 - count(left)) - count(right)), right]) if {
	trim(inner, "0123456789abcdef:") == ""
	halves := split(inner, "::")
	count(halves) == 2
	left := _hex_groups(halves[0])
	right := _hex_groups(halves[1])
	count(left) + count(right) <= 7
}

_zero_groups(n) := ["0" | some _ in numbers.range(1, n)]

_hex_groups(text) := [] if {
	text == ""
} else := [_hex_group(group) | some group in groups] if {
	groups := split(text, ":")
	every group in groups {
		_hex4(group)
	}
}

_hex4(group) if {
	group != ""
	count(group) <= 4
}

_hex_group(group) := "0" if trim_left(group, "0") == ""

else := trim_left(group, "0")

# RFC 5952: the first longest run of two or more zero groups becomes "::".
_ipv6_text(groups) := concat("", [
	concat(":", array.slice(groups, 0, start)),
	"::",
	concat(":", array.slice(groups, start + length, 8)),
]) if {
	runs := {[run, i] |
		some i in numbers.range(0, 7)
		groups[i] == "0"
		run := min({j | some j in numbers.range(i, 7); groups[j] != "0"} | {8}) - i
	}
	count(runs) > 0
	length := max({run[0] | some run in runs})
	length >= 2
	start := min({run[1] | some run in runs; run[0] == length})
} else := concat(":", groups)
