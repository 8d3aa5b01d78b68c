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
	_has_destination
	some host in _destination_hosts
	_blocked_host(host)
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

# The destination as the policy reads it: none when it holds a control
# character, or is longer than any destination needs (8,192 characters: that
# bounds the work of reading it).
_destination_text := _arguments.destination if {
	_has_destination
	count(_arguments.destination) <= 8192
	not _has_control_character(_arguments.destination)
}

default _destination_items := []

_destination_items := _items(_destination_text)

_destination_readings := [_list_item(i > _first_mailto, item) | some i, item in _destination_items]

# An item without a scheme after a mailto item may be the rest of that
# mailto's address list or fields ("mailto:?to=a@x.example,b@y.example&cc=c@z.example"
# gives "b@y.example&cc=c@z.example"): it is read as addresses (_continuation).
_list_item(true, item) := _continuation(item) if {
	not _has_scheme(item)
} else := _item(item)

_list_item(false, item) := _item(item)

# The index of the first mailto item; past the last item when there is none.
default _first_mailto := 1e15

_first_mailto := min(mailtos) if {
	mailtos := {i | some i, item in _destination_items; startswith(lower(item), "mailto:")}
	count(mailtos) > 0
}

_destination_host_ports contains host_port if {
	some reading in _destination_readings
	some host_port in reading.host_ports
}

# The hosts the policy found, for the decision's records (docs/contract.md §4b).
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
	count(host) <= 255
	labels := split(host, ".")
	some i in numbers.range(0, count(labels) - 1)
	concat(".", array.slice(labels, i, count(labels))) in domains
}

# _within for the blocked hosts, looked up as members of the object derived
# once per data document (derived.rego).
_blocked_host(host) if {
	count(host) <= 255
	labels := split(host, ".")
	some i in numbers.range(0, count(labels) - 1)
	_blocked_lookup[concat(".", array.slice(labels, i, count(labels)))]
}

# Blocked entries are read as destinations, so "Transfer.SH." and
# "https://pastebin.com" block what they name; blank entries block nothing.
# Stored by the adapters as _blocked_lookup (derived.rego).
_derive_blocked_hosts contains host if {
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

# A control character: U+0000 to U+001F, or U+007F. Strings compare by code
# point, so the least character of the text says whether it has one of the
# first kind: two builtins rather than a search for each of 33 characters.
_has_control_character(text) if min(split(text, "")) < " "

_has_control_character(text) if contains(text, "\u007f")

_host_characters := "abcdefghijklmnopqrstuvwxyz0123456789.-_"

# A list of destinations: items separated by ",", ";" or spaces.
_items(value) := [item |
	some item in split(replace(replace(value, ",", " "), ";", " "), " ")
	item != ""
]

# One item: {ok, host_ports}, where host_ports are the "host[:port]" texts it
# names and ok is false when it cannot be read unambiguously.
_item(item) := _scheme_item(lower(parts[0]), concat(":", array.slice(parts, 1, count(parts))), item) if {
	_has_scheme(item)
	parts := split(item, ":")
} else := _bare(item)

_has_scheme(item) if {
	parts := split(item, ":")
	count(parts) > 1
	_scheme_name(parts[0])
}

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
} else := _file_reading(rest) if {
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

_file_reading(rest) := {
	"ok": _file_host_ok(rest),
	"host_ports": array.concat(_file_host_ports(rest), _authority_host_ports(rest)),
}

# WHATWG, file: a host only after two slashes, no user-info; localhost is no host.
_file_host_ports(rest) := [_remote(_before_path_or_backslash(substring(rest, 2, -1)))] if {
	substring(rest, 0, 2) in {"//", "\\\\", "/\\", "\\/"}
} else := [""]

_remote(host) := "" if lower(host) == "localhost"

else := host

# A file URL's host has no port (WHATWG refuses "file://host:80/").
_file_host_ok(rest) := false if {
	some host in _file_host_ports(rest)
	contains(host, ":")
	not endswith(host, "]")
} else := true

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
