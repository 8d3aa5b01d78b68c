package veto.crm

# mailto destinations (docs/contract.md §3 "destination hosts", §9): the
# addresses a mail client sends to, and the percent-decoding it applies.

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

# Part of a mailto's address list: every part after an "@" a host, up to the
# "?" or "&" that starts the mailto's fields, read percent-decoded once (an
# escaped "," or ";" separates addresses) and as it is (a tool that takes the
# item for an address does not decode it). A "/" or "\" (a tool reading the
# item as a URL could find another host), a "%" left after decoding, or an
# address without "@": unreadable.
_continuation(item) := {"ok": count(problems) == 0, "host_ports": host_ports} if {
	decoded := _decoded(item)
	decoded_hosts := _address_hosts(decoded)
	host_ports := array.concat(decoded_hosts, _address_hosts(item))
	problems := array.flatten([
		[1 | count(decoded_hosts) == 0],
		[1 | some address in _items(decoded); not contains(address, "@")],
		[1 | _has_any(decoded, ["%", "/", "\\"])],
	])
} else := {"ok": false, "host_ports": []}

_address_hosts(text) := [split(split(segment, "?")[0], "&")[0] |
	some address in _items(text)
	segments := split(address, "@")
	some segment in array.slice(segments, 1, count(segments))
]

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
	"host_ports": [host_port |
		some address in addresses
		contains(address, "@")
		some host_port in _after_each_at(address)
	],
} if {
	decoded := _decoded(text)
	addresses := _items(decoded)
	problems := array.concat([1 | contains(decoded, "%")], [1 | some address in addresses; not contains(address, "@")])
}

_decodable(text) if {
	parts := split(text, "%")
	every part in array.slice(parts, 1, count(parts)) {
		_escaped_character(part)
	}
}

_decoded(text) := concat("", array.concat([parts[0]], unescaped)) if {
	_decodable(text)
	parts := split(text, "%")
	unescaped := [_unescaped(part) | some part in array.slice(parts, 1, count(parts))]
}

# "41bc" (what follows a "%") -> "Abc".
_unescaped(part) := concat("", [_escaped_character(part), substring(part, 2, -1)])

# The printable ASCII character the two hex digits at the start of `part`
# stand for; undefined for any other escape.
_escaped_character(part) := substring(
	" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
	code - 32, 1,
) if {
	code := (_hex_digit(substring(part, 0, 1)) * 16) + _hex_digit(substring(part, 1, 1))
	code >= 32
	code <= 126
}

_hex_digit(digit) := value if {
	count(digit) == 1
	value := indexof("0123456789abcdef", lower(digit))
	value >= 0
}
