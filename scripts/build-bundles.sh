#!/usr/bin/env bash
# Builds the policy bundles from policy/ into OUT_DIR (default bundles/):
#   crm.tar.gz       /policy.wasm, /data.json, /.manifest (+ the Rego it was compiled from)
#   crm-rego.tar.gz  the same policy as a plain Rego bundle, for an OPA server
# The revision is derived from the policy source, so the same source always
# builds the same bundle and the same version hash.
set -euo pipefail
cd "$(dirname "$0")/.."
OPA=${OPA:-.tools/bin/opa}
OUT_DIR=${1:-bundles}
CAPS=.build/wasm-capabilities.json

mkdir -p "$OUT_DIR" .build
node scripts/wasm-capabilities.mjs "$OPA" "$CAPS"

sources=$(find policy -type f \( -name '*.rego' -o -name '*.json' -o -name '.manifest' \) ! -name '*_test.rego' | LC_ALL=C sort)
# shellcheck disable=SC2086
source_hash=$(for f in $sources; do printf '%s\n' "$f"; cat "$f"; done | sha256sum | cut -c1-12)
revision="crm-${source_hash}"

common=(-b --revision "$revision" --ignore '*_test.rego' --capabilities "$CAPS")
"$OPA" build "${common[@]}" -t wasm -e veto/crm/decision -o "$OUT_DIR/crm.tar.gz" policy
"$OPA" build "${common[@]}" -o "$OUT_DIR/crm-rego.tar.gz" policy

echo "revision $revision"
echo "crm.tar.gz $(node scripts/bundle-hash.mjs "$OUT_DIR/crm.tar.gz")"
echo "crm-rego.tar.gz $(node scripts/bundle-hash.mjs "$OUT_DIR/crm-rego.tar.gz")"
