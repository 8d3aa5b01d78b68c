package veto.crm

# Destinations (docs/contract.md §3 "destination hosts", §9): every host a
# destination names, read as the parsers that send the data read it. When two
# parser families read a value differently (a "\" before the path: a WHATWG
# parser reads it as "/" for http(s), ws(s), ftp and file, an RFC 3986 parser
# as part of the authority) the hosts of both readings count. The destination
# is blocked when any host is blocked, and when the value cannot be read
# unambiguously: a control character anywhere (a WHATWG parser drops tabs and
# newlines, others do not), a host that is not a plain ASCII host name (percent
# escapes, non-ASCII letters, nothing at all), an IPv4 address in any form but
# dotted decimal, a bad port, a scheme with no authority, a mailto naming no
# address.

_has_destination if is_string(_arguments.destination)

_deny contains "blocked_destination" if {
	_has_destination
	not _destination_clear
}

_deny contains "blocked_destination" if {
	some host in _destination_hosts
	_within(host, _blocked_hosts)
}

# A blocked_destinations that is not a list blocks every destination.
_deny contains "blocked_destination" if {
	_has_destination
	not is_array(_blocked_destinations)
}

# A tenant that lists allowed_destinations sends data only to those hosts and
# their subdomains; a list that is not a list of strings allows nothing.
_deny contains "destination_not_allowed" if {
	_has_destination
	"allowed_destinations" in object.keys(_tenant)
	not _destination_allowed
}

_destination_allowed if {
	_destination_clear
	_string_array(_tenant.allowed_destinations)
	every host in _destination_hosts {
		_within(host, _allowed_hosts)
	}
}

# The hosts the policy found, for the decision's records (docs/contract.md §4b).
default _destination_answer := {}

_destination_answer := {"destination_hosts": sort(_destination_hosts)} if _has_destination

default _destination_items := []

_destination_items := _items(_arguments.destination) if {
	_has_destination
	not _has_any(_arguments.destination, _control_characters)
}

_destination_readings := [_item(item) | some item in _destination_items]

_destination_host_ports contains host_port if {
	some reading in _destination_readings
	some host_port in reading.host_ports
}

_destination_hosts contains _host_name(host_port) if some host_port in _destination_host_ports

_destination_clear if {
	count(_destination_host_ports) > 0
	every reading in _destination_readings {
		reading.ok
	}
	every host_port in _destination_host_ports {
		_host_valid(host_port)
	}
}

# A host is within a list when it is an entry or a subdomain of one.
_within(host, domains) if {
	labels := split(host, ".")
	some i in numbers.range(0, count(labels) - 1)
	concat(".", array.slice(labels, i, count(labels))) in domains
}

# Blocked entries are read as destinations, so "Transfer.SH." and
# "https://pastebin.com" block what they name; blank entries block nothing.
_blocked_hosts contains host if {
	some entry in _blocked_destinations
	is_string(entry)
	some host in _entry_hosts(entry)
}

_entry_hosts(entry) := {entry} if {
	entry != ""
	trim(entry, _host_characters) == ""
	not endswith(entry, ".")
} else := {_host_name(host_port) |
	some item in _items(entry)
	some host_port in _item(item).host_ports
}

# Allowed entries must be host names ("example.com", "[::1]", "10.0.0.1");
# any other entry allows nothing.
_allowed_hosts contains _host_name(entry) if {
	some raw in _tenant.allowed_destinations
	is_string(raw)
	entry := trim_space(raw)
	_host_valid(entry)
}

_has_any(value, needles) if {
	some needle in needles
	contains(value, needle)
}

_control_characters := [
	"\u0000", "\u0001", "\u0002", "\u0003", "\u0004", "\u0005", "\u0006", "\u0007",
	"\u0008", "\t", "\n", "\u000b", "\u000c", "\r", "\u000e", "\u000f",
	"\u0010", "\u0011", "\u0012", "\u0013", "\u0014", "\u0015", "\u0016", "\u0017",
	"\u0018", "\u0019", "\u001a", "\u001b", "\u001c", "\u001d", "\u001e", "\u001f",
	"\u007f",
]

_host_characters := "abcdefghijklmnopqrstuvwxyz0123456789.-_"

# A list of destinations: items separated by ",", ";" or spaces.
_items(value) := [item |
	some item in split(replace(replace(value, ",", " "), ";", " "), " ")
	item != ""
]

# One item: {ok, host_ports}, where host_ports are the "host[:port]" texts it
# names and ok is false when it cannot be read unambiguously.
_item(item) := _scheme_item(lower(parts[0]), concat(":", array.slice(parts, 1, count(parts))), item) if {
	parts := split(item, ":")
	count(parts) > 1
	_scheme_name(parts[0])
} else := _bare(item)

# RFC 3986: a letter, then letters, digits, "+", "-" or ".".
_scheme_name(name) if {
	name != ""
	trim(lower(substring(name, 0, 1)), "abcdefghijklmnopqrstuvwxyz") == ""
	trim(lower(name), "abcdefghijklmnopqrstuvwxyz0123456789+-.") == ""
}

_special_schemes := {"http", "https", "ws", "wss", "ftp"}

_scheme_item(scheme, rest, item) := _mailto(rest) if {
	scheme == "mailto"
} else := _reading(array.concat(_special_host_ports(rest), _authority_host_ports(rest))) if {
	scheme in _special_schemes
} else := _reading(array.concat(_file_host_ports(rest), _authority_host_ports(rest))) if {
	scheme == "file"
} else := _reading(_authority_host_ports(rest)) if {
	startswith(rest, "//")
} else := _bare(item) if {
	# "localhost:8080/x", "hooks.example.com:8443": a host and port, not a scheme.
	_port(_before_path_or_backslash(rest))
} else := {"ok": false, "host_ports": []}

_reading(host_ports) := {"ok": true, "host_ports": host_ports}

# WHATWG, special schemes: any "/" and "\" after the scheme are skipped, the
# authority ends at "/", "\", "?" or "#", the host follows its last "@".
_special_host_ports(rest) := [_after_last_at(_before_path_or_backslash(trim_left(rest, "/\\")))]

# WHATWG, file: a host only after two slashes, no user-info; localhost is no host.
_file_host_ports(rest) := [_remote(_before_path_or_backslash(substring(rest, 2, -1)))] if {
	substring(rest, 0, 2) in {"//", "\\\\", "/\\", "\\/"}
} else := [""]

_remote(host) := "" if lower(host) == "localhost"

else := host

# RFC 3986 "//" authority: up to "/", "?" or "#"; "\" read both as a character
# of the authority and as "/".
_authority_host_ports(rest) := [
	_after_last_at(_before_path(authority)),
	_after_last_at(_before_path_or_backslash(authority)),
] if {
	startswith(rest, "//")
	authority := substring(rest, 2, -1)
} else := []

# A value with no scheme: an address, a host or "user@host:port/path", read
# with "\" as a character and as "/", every part after an "@" a host (an
# address's domain follows its last "@", a mail server's source route may use
# another). A "%" before the path cannot be read unambiguously.
_bare(item) := {
	"ok": _lacks(concat(" ", [authority, slashed]), "%"),
	"host_ports": array.concat(_after_each_at(authority), _after_each_at(slashed)),
} if {
	authority := _before_path(trim_left(item, "/"))
	slashed := _before_path_or_backslash(trim_left(item, "/\\"))
}

_before_path(value) := split(split(split(value, "/")[0], "?")[0], "#")[0]

_before_path_or_backslash(value) := split(_before_path(value), "\\")[0]

_after_last_at(value) := parts[count(parts) - 1] if {
	parts := split(value, "@")
}

_after_each_at(value) := array.slice(parts, 1, count(parts)) if {
	parts := split(value, "@")
	count(parts) > 1
} else := [value]

_lacks(value, needle) := false if contains(value, needle)

else := true

# mailto (RFC 6068): every address of the path and of the to, cc and bcc
# fields (names compared ignoring case), percent-decoded once. An escape that
# is not printable ASCII, a "%" left after decoding, a field name that is not
# a plain token, an address without "@", or no address at all: unreadable.
_mailto(rest) := {"ok": count(problems) == 0, "host_ports": host_ports} if {
	parts := split(rest, "?")
	fields := split(concat("?", array.slice(parts, 1, count(parts))), "&")
	texts := array.concat([parts[0]], [_field_value(field) | some field in fields; _recipient_field(field)])
	lists := [_address_list(text) | some text in texts]
	host_ports := [host_port | some list in lists; some host_port in list.host_ports]
	problems := array.flatten([
		[1 | count(host_ports) == 0],
		[1 | some list in lists; not list.ok],
		[1 | some field in fields; _bad_field(field)],
	])
}

_field_name(field) := split(field, "=")[0]

_field_value(field) := concat("=", array.slice(parts, 1, count(parts))) if {
	parts := split(field, "=")
}

_recipient_field(field) if lower(_decoded(_field_name(field))) in {"to", "cc", "bcc"}

_bad_field(field) if {
	field != ""
	not _decodable(_field_name(field))
}

_bad_field(field) if {
	trim(lower(_decoded(_field_name(field))), "abcdefghijklmnopqrstuvwxyz0123456789-_") != ""
}

_bad_field(field) if {
	field != ""
	_field_name(field) == ""
}

_address_list(text) := {"ok": false, "host_ports": []} if {
	not _decodable(text)
} else := {
	"ok": count(problems) == 0,
	"host_ports": [host_port | some address in addresses; some host_port in _after_each_at(address)],
} if {
	decoded := _decoded(text)
	addresses := _items(decoded)
	problems := array.concat([1 | contains(decoded, "%")], [1 | some address in addresses; not contains(address, "@")])
}

_decodable(text) if {
	parts := split(text, "%")
	every part in array.slice(parts, 1, count(parts)) {
		_percent_escapes[lower(substring(part, 0, 2))]
	}
}

_decoded(text) := concat("", array.concat([parts[0]], unescaped)) if {
	_decodable(text)
	parts := split(text, "%")
	unescaped := [_unescaped(part) | some part in array.slice(parts, 1, count(parts))]
}

# "41bc" (what follows a "%") -> "Abc".
_unescaped(part) := concat("", [_percent_escapes[lower(substring(part, 0, 2))], substring(part, 2, -1)])

_printable_ascii := " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"

# "20" -> " ", ..., "7e" -> "~".
_percent_escapes[code] := substring(_printable_ascii, i, 1) if {
	some i in numbers.range(0, 94)
	code := concat("", [
		substring("0123456789abcdef", floor((i + 32) / 16), 1),
		substring("0123456789abcdef", (i + 32) % 16, 1),
	])
}

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
