#!/usr/bin/env bash
# Fails when the committed bundles/ are stale: rebuilds them from policy/ into
# .build/fresh-bundles and compares version hashes (not tar bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-bundles.sh .build/fresh-bundles > /dev/null
stale=0
for b in crm.tar.gz crm-rego.tar.gz; do
  if [ ! -f "bundles/$b" ]; then
    echo "bundles/$b is missing: run make bundle and commit it" >&2; stale=1; continue
  fi
  committed=$(node scripts/bundle-hash.mjs "bundles/$b")
  fresh=$(node scripts/bundle-hash.mjs ".build/fresh-bundles/$b")
  if [ "$committed" != "$fresh" ]; then
    echo "bundles/$b is stale ($committed, policy/ builds $fresh): run make bundle and commit it" >&2
    stale=1
  fi
done
[ "$stale" = 0 ] && echo "bundles are up to date with policy/"
exit "$stale"
