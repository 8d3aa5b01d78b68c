#!/usr/bin/env bash
# Builds the bundles the TypeScript tests decide with: the policy/ Rego with
# test/fixtures/data.json as its data, so a security team can change
# policy/data.json without breaking the tests (as helpers_test.rego does for
# the Rego tests). Output: .build/test-policy-root/policy (the source) and
# .build/test-bundles/crm.tar.gz, crm-rego.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
root=.build/test-policy-root
rm -rf "$root" && mkdir -p "$root"
cp -r policy "$root/policy"
find "$root/policy" -name '*_test.rego' -delete
cp test/fixtures/data.json "$root/policy/data.json"
POLICY_ROOT=$root bash scripts/build-bundles.sh .build/test-bundles > /dev/null
echo "test bundles: .build/test-bundles (policy/ with test/fixtures/data.json)"
