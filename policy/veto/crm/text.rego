package veto.crm

# How the policy reads names and required texts (docs/contract.md §9), the same
# way the adapter does (adapter/common/text.ts). The tables are generated from the
# engines themselves into unicode.rego (scripts/unicode-tables.mjs).
#
# One case-folding rule. Field, object and amount-field names match when their
# fold keys are equal. A name's fold key: each character listed in _fold_table
# replaced by its entry, then lower(). The table is what makes the key the same
# on OPA's Go evaluator, its WASM evaluator and in the adapter, and makes two
# names that match under lower() (either evaluator), JavaScript's toLowerCase()
# or Unicode simple case folding have the same key: "TAX_İD" is "tax_id". It
# may join a few names none of those joins (it drops U+0307, so that
# toLowerCase()'s "i̇" for "İ" is "i"); that errs on the side of sensitive.
#
# Walking a name character by character is what costs on the WASM evaluator,
# so names from the call that are plain ASCII, nearly all of them, take a
# shortcut with the same answer: their fold key is lower(name), and the only
# configured names with that key are those whose _plain_key is the same (an
# ASCII fold key needs ASCII characters and the few listed in _plain_key).
# Only for a name from the call outside ASCII are fold keys computed, its own
# and the configured names'.

_fold_key(name) := concat("", [_fold_character(ch) | some ch in split(name, "")])

_fold_character(ch) := folded if {
	folded := _fold_table[ch]
} else := lower(ch)

# Strings compare by code point (UTF-8 byte order) on both evaluators, so a text
# is ASCII when its greatest character is below U+0080: two builtins, no walk.
_ascii(text) if {
	text == ""
} else if {
	max(split(text, "")) < "\u0080"
}

# One idea of blank. A text is blank when it holds nothing but blank characters
# (White_Space, Default_Ignorable_Code_Point, Cc and Cf; unicode.rego), so
# "\u200b", "\ufeff", "\u0000" and "\u200b \u00a0" are all blank and "\u200bok"
# is not. Nearly every text starts with a character that is not blank: that
# comparison decides before the text is split.
_blank(text) if {
	_blank_character(substring(text, 0, 1))
	every ch in split(text, "") {
		_blank_member(ch)
	}
}
