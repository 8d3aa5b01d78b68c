#!/usr/bin/env bash
# Builds the policy bundles from policy/ into OUT_DIR (default bundles/):
#   crm.tar.gz       /policy.wasm, /data.json, /.manifest (+ the Rego it was compiled from)
#   crm-rego.tar.gz  the same policy as a plain Rego bundle, for an OPA server
# The revision is derived from the policy source, so the same source always
# builds the same bundle and the same version hash.
#
# POLICY_ROOT (default: this repository) is the folder that holds the policy/
# to build; the test suite builds its own bundles from a copy whose data.json is
# test/fixtures/data.json (scripts/build-test-bundles.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
OPA=$(realpath "${OPA:-.tools/bin/opa}")
OUT_DIR=$(mkdir -p "${1:-bundles}" && realpath "${1:-bundles}")
CAPS=$REPO/.build/wasm-capabilities.json
POLICY_ROOT=$(realpath "${POLICY_ROOT:-.}")

mkdir -p .build
node scripts/wasm-capabilities.mjs "$OPA" "$CAPS"

# opa build names bundle files by the path it is given: build from POLICY_ROOT
# with the relative path "policy", so entries are policy/veto/crm/... always.
cd "$POLICY_ROOT"
sources=$(find policy -type f \( -name '*.rego' -o -name '*.json' -o -name '.manifest' \) ! -name '*_test.rego' | LC_ALL=C sort)
# shellcheck disable=SC2086
source_hash=$(for f in $sources; do printf '%s\n' "$f"; cat "$f"; done | sha256sum | cut -c1-12)
revision="crm-${source_hash}"

common=(-b --revision "$revision" --ignore '*_test.rego' --capabilities "$CAPS")
# veto/crm/decision first: the decision module is the one the manifest lists
# for it; veto/crm/visible (tool visibility, docs/contract.md §4b) second;
# veto/crm/derived (what the adapters compute once per data document and store
# at data.veto.derived: policy/veto/crm/derived.rego) third.
"$OPA" build "${common[@]}" -t wasm -e veto/crm/decision -e veto/crm/visible -e veto/crm/derived -o "$OUT_DIR/crm.tar.gz" policy
"$OPA" build "${common[@]}" -o "$OUT_DIR/crm-rego.tar.gz" policy

echo "revision $revision"
echo "crm.tar.gz $(node "$REPO/scripts/bundle-hash.mjs" "$OUT_DIR/crm.tar.gz")"
echo "crm-rego.tar.gz $(node "$REPO/scripts/bundle-hash.mjs" "$OUT_DIR/crm-rego.tar.gz")"
