#!/usr/bin/env bash
# Evaluates the sample calls in test/cases/sample-calls.jsonl with OPA's
# evaluator against policy/ and prints one verdict per call.
set -euo pipefail
cd "$(dirname "$0")/.."
while IFS= read -r call; do
  [ -z "$call" ] && continue
  label=$(printf '%s' "$call" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s);console.log(c.label)})')
  input=$(printf '%s' "$call" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const c=JSON.parse(s);delete c.label;console.log(JSON.stringify(c))})')
  decision=$(printf '%s' "$input" | .tools/bin/opa eval -d policy --stdin-input -f raw data.veto.crm.decision)
  printf '%-52s %s\n' "$label" "$(printf '%s' "$decision" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s);console.log(d.action+(d.escalated?" (escalated)":"")+"  "+d.reasons.map(r=>r.code).join(",")+(d.approvers.length?"  approvers: "+d.approvers.join(", "):""))})')"
done < test/cases/sample-calls.jsonl
