package veto.crm

_deny contains "blocked_destination" if {
	host := _host(_arguments.destination)
	some blocked in _blocked_destinations
	_non_empty_string(blocked)
	_same_or_subdomain(host, _host(blocked))
}

_same_or_subdomain(host, domain) if host == domain

_same_or_subdomain(host, domain) if endswith(host, concat("", [".", domain]))

# The host a destination names: for a URL its host (no user, port or path), for
# an e-mail address the part after the last "@", otherwise the value up to its
# first "/", "?" or "#" (so "pastebin.com/raw/x" is still pastebin.com).
# Lower-cased, trailing dots removed.
_host(value) := trim_right(_without_port(_after_last_at(_authority(lower(trim_space(value))))), ".") if {
	is_string(value)
}

_authority(value) := _cut_path(substring(value, indexof(value, "://") + 3, -1)) if {
	contains(value, "://")
} else := _cut_path(trim_prefix(value, "//"))

_cut_path(value) := split(split(split(split(value, "/")[0], "?")[0], "#")[0], "\\")[0]

_after_last_at(value) := parts[count(parts) - 1] if {
	parts := split(value, "@")
}

_without_port(value) := concat("", [split(value, "]")[0], "]"]) if {
	startswith(value, "[")
} else := split(value, ":")[0]
