package veto.crm

_deny contains "blocked_destination" if {
	host := _host(_arguments.destination)
	some blocked in _blocked_destinations
	_non_empty_string(blocked)
	_same_or_subdomain(host, _host(blocked))
}

# A destination whose host is not a plain ASCII host name (percent escapes,
# white space, non-ASCII letters, nothing at all) is blocked: URL parsers
# disagree about such values (a browser's decodes "%2E", drops tabs and reads
# U+3002 as "."), so the policy cannot show it is not a blocked host.
_deny contains "blocked_destination" if {
	host := _host(_arguments.destination)
	not _plain_host(host)
}

# A blocked_destinations that is not a list blocks every destination.
_deny contains "blocked_destination" if {
	is_string(_arguments.destination)
	not is_array(_blocked_destinations)
}

_same_or_subdomain(host, domain) if host == domain

_same_or_subdomain(host, domain) if endswith(host, concat("", [".", domain]))

_plain_host(host) if {
	host != ""
	trim(host, "abcdefghijklmnopqrstuvwxyz0123456789.-_[]:") == ""
}

# The host a destination names: for a URL its host (no user, port or path), for
# an e-mail address the part after the last "@", otherwise the value up to its
# first "/", "?" or "#" (so "pastebin.com/raw/x" is still pastebin.com). A
# backslash reads as "/", and a scheme without "//" ("https:pastebin.com",
# "mailto:ana@gmail.com") is skipped, as URL parsers do. Lower-cased, trailing
# dots removed.
_host(value) := trim_right(_without_port(_after_last_at(_authority(_normalized(value)))), ".") if {
	is_string(value)
}

_normalized(value) := replace(lower(trim_space(value)), "\\", "/")

_authority(value) := _cut_path(substring(value, indexof(value, "://") + 3, -1)) if {
	contains(value, "://")
} else := _cut_path(trim_left(_after_scheme(value), "/"))

# "scheme:rest" when the part before the first ":" can be a scheme (no ".",
# "@", "/" or "[" in it) and what follows is not a port number.
_after_scheme(value) := rest if {
	colon := indexof(value, ":")
	colon > 0
	scheme := substring(value, 0, colon)
	not _has_any(scheme, [".", "@", "/", "["])
	rest := substring(value, colon + 1, -1)
	not _port(_cut_path(rest))
} else := value

_has_any(value, needles) if {
	some needle in needles
	contains(value, needle)
}

_port(value) if {
	value != ""
	trim(value, "0123456789") == ""
}

_cut_path(value) := split(split(split(value, "/")[0], "?")[0], "#")[0]

_after_last_at(value) := parts[count(parts) - 1] if {
	parts := split(value, "@")
}

_without_port(value) := concat("", [split(value, "]")[0], "]"]) if {
	startswith(value, "[")
} else := split(value, ":")[0]
