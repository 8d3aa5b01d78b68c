#!/usr/bin/env bash
# Installs the pinned OPA CLI and Regal linter into .tools/bin with `go install`
# (no prebuilt downloads). Idempotent: a tool whose stamp matches its pin is
# left alone, so this costs nothing once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
OPA_VERSION=v1.22.2
REGAL_VERSION=$(awk '$1 == "require" && $2 == "github.com/open-policy-agent/regal" { print $3 }' scripts/tools/regal/go.mod)
BIN=$PWD/.tools/bin
mkdir -p "$BIN"

if ! command -v go >/dev/null 2>&1; then
  echo "install-tools: Go is required (go install builds the OPA CLI and Regal)" >&2
  exit 1
fi

# -tags opa_wasm links OPA's WebAssembly engine, which `opa test -t wasm` needs.
opa_stamp="opa $OPA_VERSION opa_wasm"
if [ "$(cat "$BIN/.opa.stamp" 2>/dev/null)" != "$opa_stamp" ] || [ ! -x "$BIN/opa" ]; then
  echo "install-tools: building OPA $OPA_VERSION (first time only, a few minutes)"
  GOBIN=$BIN GOFLAGS=-buildvcs=false go install -tags opa_wasm "github.com/open-policy-agent/opa@$OPA_VERSION"
  echo "$opa_stamp" > "$BIN/.opa.stamp"
fi

# Regal is pinned by scripts/tools/regal/go.mod (and go.sum) rather than
# `go install regal@version`: the module proxy refuses Regal's version list,
# which `go install pkg@version` asks for.
regal_stamp="regal $REGAL_VERSION"
if [ "$(cat "$BIN/.regal.stamp" 2>/dev/null)" != "$regal_stamp" ] || [ ! -x "$BIN/regal" ]; then
  echo "install-tools: building Regal $REGAL_VERSION (first time only)"
  (cd scripts/tools/regal && GOBIN=$BIN GOFLAGS=-buildvcs=false go install github.com/open-policy-agent/regal)
  echo "$regal_stamp" > "$BIN/.regal.stamp"
fi
