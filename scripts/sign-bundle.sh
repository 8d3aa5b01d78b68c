#!/usr/bin/env bash
# Signs a built bundle in OPA's own format and checks the result with OPA:
#   scripts/sign-bundle.sh [KEY] [ALG] [IN] [OUT]
#     KEY  PEM private key   (default .build/keys/dev-es256-private.pem; make dev-keys)
#     ALG  RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 (default ES256)
#     IN   unsigned bundle   (default bundles/crm.tar.gz)
#     OUT  signed copy       (default bundles/crm.signed.tar.gz)
#
# `opa sign` writes .signatures.json (one JWT listing every file of IN with its
# SHA-256, and when it was signed: iat); it is appended to a copy of IN as /.signatures.json. Every other
# byte of every file stays as built and tested, so the signed copy has the
# same version hash (.signatures.json is excluded from it). Then `opa build
# --verification-key` must accept the signed copy with the public key, or the
# script fails and removes it.
#
# HMAC (HS*) is left out on purpose: `opa sign` takes the secret on its
# command line, where `ps` shows it. Use an RSA or EC key.
set -euo pipefail
# Paths given are relative to where the script is called from; defaults to the repository.
from_caller() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
KEY=${1:+$(from_caller "$1")}
IN=${3:+$(from_caller "$3")}
OUT=${4:+$(from_caller "$4")}
cd "$(dirname "$0")/.."
OPA=${OPA:-.tools/bin/opa}
KEY=${KEY:-.build/keys/dev-es256-private.pem}
ALG=${2:-ES256}
IN=${IN:-bundles/crm.tar.gz}
OUT=${OUT:-bundles/crm.signed.tar.gz}

case "$ALG" in
  RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512) ;;
  *) echo "sign-bundle: unsupported algorithm $ALG (RS*, PS* or ES*)" >&2; exit 2 ;;
esac
[[ -f $KEY ]] || { echo "sign-bundle: no key $KEY (make dev-keys creates a development pair)" >&2; exit 2; }
[[ -f $IN ]] || { echo "sign-bundle: no bundle $IN (make bundle)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Refuse a bundle that is already signed: its old signature would sit beside the new one.
entries=$(tar -tzf "$IN" 2>/dev/null | sed -e 's,^\./,,' -e 's,^/,,')
if grep -qx '.signatures.json' <<<"$entries"; then
  echo "sign-bundle: $IN is already signed" >&2; exit 2
fi

# The token also says when it was signed: iat, seconds since the epoch (now,
# or SIGNING_IAT). It is covered by the signature, so a bundle server cannot
# change it; with bundleRollback the adapter refuses a bundle signed no later
# than the one in force (docs/deploying-policy.md).
IAT=${SIGNING_IAT:-$(date +%s)}
[[ $IAT =~ ^[0-9]+$ ]] || { echo "sign-bundle: SIGNING_IAT must be seconds since the epoch, got $IAT" >&2; exit 2; }
printf '{"iat": %s}\n' "$IAT" > "$work/claims.json"

"$OPA" sign --bundle "$IN" --signing-key "$KEY" --signing-alg "$ALG" --claims-file "$work/claims.json" --output-file-path "$work"
gzip -dc "$IN" > "$work/bundle.tar"
# Same entry style as opa build: absolute name, root-owned, epoch mtime, 0600.
tar -rf "$work/bundle.tar" -C "$work" -P --transform 's,^,/,' \
  --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=600 .signatures.json
mkdir -p "$(dirname "$OUT")"
gzip -n -9 < "$work/bundle.tar" > "$work/signed.tar.gz"

openssl pkey -in "$KEY" -pubout -out "$work/public.pem"
if ! "$OPA" build --bundle "$work/signed.tar.gz" --verification-key "$work/public.pem" --signing-alg "$ALG" \
  --output "$work/verified.tar.gz" >/dev/null; then
  echo "sign-bundle: OPA does not accept the signed bundle" >&2; exit 1
fi
mv "$work/signed.tar.gz" "$OUT"

echo "signed $OUT ($ALG, $KEY)"
echo "version $(node scripts/bundle-hash.mjs "$OUT") (unsigned $IN: $(node scripts/bundle-hash.mjs "$IN"))"
