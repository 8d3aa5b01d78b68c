package veto.crm

# METADATA
# title: Reason codes
# description: >-
#   Every reason code Veto can answer, defined once. `class` is the verdict class
#   (1 wins over 2, and so on), `action` the verdict it produces, and `source`
#   says whether the policy or the TypeScript adapter produces it. The README's
#   reason-code table is generated from this rule. One definition per code: a
#   decision reads only the entries of the reasons it reports, and on the WASM
#   evaluator an object written as one literal would be built whole for each call.
reason_codes["invalid_input"] := {
	"class": 1, "action": "deny", "source": "policy",
	"message": "The call does not match the input contract",
}

reason_codes["repeated_denies"] := {
	"class": 2, "action": "deny", "source": "policy",
	"message": "Repeated attempts after deny: escalated to incident review",
}

reason_codes["unknown_tool"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The tool is not known to the policy",
}

reason_codes["unknown_tenant"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The actor's tenant is not known to the policy",
}

reason_codes["wrong_tenant"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The target record belongs to another tenant",
}

reason_codes["actor_not_allowed"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The actor may not act for this tenant",
}

reason_codes["unknown_environment"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The environment is not known to the policy",
}

reason_codes["missing_reason"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "A write needs a reason",
}

reason_codes["blocked_destination"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The destination is blocked",
}

reason_codes["destination_not_allowed"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The destination is not on the tenant's allowed list",
}

reason_codes["amount_over_limit"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "The amount is above the tenant's limit",
}

reason_codes["no_approver"] := {
	"class": 3, "action": "deny", "source": "policy",
	"message": "Approval is required but the tenant has no approver",
}

reason_codes["sensitive_field"] := {
	"class": 4, "action": "require_approval", "source": "policy",
	"message": "The call touches a sensitive field: the system owner must approve",
}

reason_codes["production_amount"] := {
	"class": 4, "action": "require_approval", "source": "policy",
	"message": "A production write at or above the approval threshold: the system owner must approve",
}

reason_codes["read_only"] := {
	"class": 5, "action": "allow", "source": "policy",
	"message": "Read-only call",
}

reason_codes["low_value"] := {
	"class": 5, "action": "allow", "source": "policy",
	"message": "Low-value write",
}

reason_codes["evaluation_error"] := {
	"class": 0, "action": "deny", "source": "adapter",
	"message": "The policy could not be evaluated",
}

reason_codes["record_unavailable"] := {
	"class": 0, "action": "deny", "source": "adapter",
	"message": "The decision record could not be written durably",
}

reason_codes["record_state_unavailable"] := {
	"class": 0, "action": "deny", "source": "adapter",
	"message": "The state of the CRM record could not be read",
}
