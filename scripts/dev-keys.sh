#!/usr/bin/env bash
# Creates development key pairs for signing policy bundles and decision-log
# checkpoints, in KEY_DIR (default .build/keys, git-ignored):
#   dev-es256-private.pem / dev-es256-public.pem       ECDSA P-256 (ES256)
#   dev-rs256-private.pem / dev-rs256-public.pem       RSA 3072 (RS256, PS256)
#   dev-ed25519-private.pem / dev-ed25519-public.pem   Ed25519 (decision-log checkpoints: make demo)
# Existing keys are kept (delete them to start over). These are for local
# development only: production signing keys live in the CI secret store and
# never on a developer machine or in git.
set -euo pipefail
cd "$(dirname "$0")/.."
KEY_DIR=${1:-.build/keys}

mkdir -p "$KEY_DIR"
chmod 700 "$KEY_DIR"
umask 077

make_pair() { # name, then openssl genpkey options
  local name=$1; shift
  local private="$KEY_DIR/dev-$name-private.pem" public="$KEY_DIR/dev-$name-public.pem"
  if [[ -f $private ]]; then
    echo "kept    $private"
  else
    openssl genpkey "$@" -out "$private" 2>/dev/null
    echo "created $private"
  fi
  openssl pkey -in "$private" -pubout -out "$public"
  chmod 644 "$public"
  echo "        $public"
}

make_pair es256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
make_pair rs256 -algorithm RSA -pkeyopt rsa_keygen_bits:3072
make_pair ed25519 -algorithm ed25519
