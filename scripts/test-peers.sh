#!/usr/bin/env bash
# Both ends of the peer ranges (`npm run test:peers`, called by .ci/run): `tsc --noEmit -p .` and
# the pg suite (`vitest run test/pg`) on
#   - the oldest peers: the floors of package.json's `effect` and `@effect/sql-pg` ranges
#     (`>=X <Y`), with the test tools of the same minor (@effect/vitest, @effect/platform-node,
#     @effect/opentelemetry);
#   - the newest peers the ranges allow (asked from the registry). When they are the repo's own
#     devDependencies, the repo itself is that end: it runs here too, unless
#     `--skip-dev-end` says the caller's `npm test` (tsc + the whole suite) already ran it.
#
# An end other than the repo's own runs in a temporary copy: the repo's files (git's list, or
# everything but node_modules/dist/.git), a copy of its node_modules, then `npm install` of the
# end's versions there (package.json rewritten in the copy only). The repo is never touched.
# Database: as the tests' (DATABASE_URL, else an embedded server of each test file's own).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
skip_dev_end=""
for arg in "$@"; do
  case "$arg" in
    --skip-dev-end) skip_dev_end=1 ;;
    *) echo "usage: $0 [--skip-dev-end]" >&2; exit 2 ;;
  esac
done
t0=$SECONDS
step() { echo "== [$((SECONDS - t0))s] $*"; }

pkg() { node -p "const p = require('./package.json'); $1"; }
peer_range() { pkg "p.peerDependencies['$1']"; }
dev_version() { pkg "p.devDependencies['$1']"; }
# The newest published version inside a range.
newest_in() { npm view "$1@$2" version --json | node -e '
  let s = ""; process.stdin.on("data", (d) => s += d).on("end", () => {
    const v = JSON.parse(s); console.log(Array.isArray(v) ? v[v.length - 1] : v) })'; }
# "4.0.6" -> "~4.0.0": the test tools of the same minor as effect.
same_minor() { echo "~$(cut -d. -f1,2 <<<"$1").0"; }

effect_range=$(peer_range effect)
sqlpg_range=$(peer_range @effect/sql-pg)
oldest_effect=$(bash scripts/peer-floor.sh effect)
oldest_sqlpg=$(bash scripts/peer-floor.sh @effect/sql-pg)
newest_effect=$(newest_in effect "$effect_range")
newest_sqlpg=$(newest_in @effect/sql-pg "$sqlpg_range")
echo "  peer ranges: effect $effect_range, @effect/sql-pg $sqlpg_range"
echo "  oldest: effect $oldest_effect + @effect/sql-pg $oldest_sqlpg; newest: effect $newest_effect + @effect/sql-pg $newest_sqlpg"
echo "  devDependencies: effect $(dev_version effect) + @effect/sql-pg $(dev_version @effect/sql-pg)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/effect-db-pool-peers.XXXXXX")
# Readable by all: run as root, the embedded server runs its binaries (in the copy) as another user.
chmod 755 "$tmp"
cleanup() { if [ -n "${TEST_PEERS_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

failures=()
# checks DIR LABEL: tsc and the pg suite in DIR, with the effect versions it has printed first.
checks() {
  local dir=$1 label=$2
  (
    cd "$dir"
    echo "  installed: $(node -p "['effect', '@effect/sql-pg', '@effect/vitest', '@effect/platform-node'].map((n) => n + ' ' + require(n + '/package.json').version).join(', ')")"
    step "[$label] tsc --noEmit -p ."
    if ! npx tsc --noEmit -p .; then exit 1; fi
    step "[$label] vitest run test/pg"
    npx vitest run test/pg
  ) || failures+=("$label")
}

# overlay LABEL EFFECT SQLPG: a copy of the repo with those peers, then the checks in it.
overlay() {
  local label=$1 effect=$2 sqlpg=$3 dir="$tmp/$1"
  step "[$label] copy of the repo with effect $effect + @effect/sql-pg $sqlpg"
  mkdir -p "$dir"
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$dir"
  else
    tar -c --exclude=./node_modules --exclude=./dist --exclude=./.git . | tar -x -C "$dir"
  fi
  cp -a node_modules "$dir/"
  # The end's versions, and the test tools of the same minor; installed into the copy only.
  node -e '
    const fs = require("fs"), [file, effect, sqlpg, tools] = process.argv.slice(1)
    const p = JSON.parse(fs.readFileSync(file, "utf8"))
    Object.assign(p.devDependencies, {
      effect, "@effect/sql-pg": sqlpg, "@effect/vitest": tools, "@effect/platform-node": tools,
      "@effect/opentelemetry": tools
    })
    p.overrides = { ...p.overrides, "@effect/platform-node-shared": tools }
    fs.writeFileSync(file, JSON.stringify(p, null, 2) + "\n")' "$dir/package.json" "$effect" "$sqlpg" "$(same_minor "$effect")"
  if ! (cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --loglevel=error) >"$dir.install.log" 2>&1; then
    sed 's/^/       | /' "$dir.install.log"
    failures+=("$label (npm install)")
    return
  fi
  # One copy of effect, at the version asked for, and npm's own check of the tree.
  if ! (cd "$dir" && npm ls effect --all >/dev/null 2>&1) ||
    [ "$(cd "$dir" && node -p "require('effect/package.json').version")" != "$effect" ] ||
    [ "$(cd "$dir" && node -p "require('@effect/sql-pg/package.json').version")" != "$sqlpg" ]; then
    (cd "$dir" && npm ls effect @effect/sql-pg --all 2>&1 | sed 's/^/       | /') || true
    failures+=("$label (the copy does not hold effect $effect + @effect/sql-pg $sqlpg alone)")
    return
  fi
  checks "$dir" "$label"
}

overlay oldest "$oldest_effect" "$oldest_sqlpg"

if [ "$newest_effect" = "$(dev_version effect)" ] && [ "$newest_sqlpg" = "$(dev_version @effect/sql-pg)" ]; then
  if [ -n "$skip_dev_end" ]; then
    echo "  newest: the repo's own devDependencies, checked by the caller's npm test (tsc + whole suite)"
  else
    checks "$repo" newest
  fi
else
  echo "  newest peers are not the devDependencies: checking them in a copy (move the devDependencies up)"
  overlay newest "$newest_effect" "$newest_sqlpg"
fi

step "summary"
if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED: ${failures[*]}"
  exit 1
fi
echo "OK: tsc and the pg suite pass on effect $oldest_effect + @effect/sql-pg $oldest_sqlpg and on effect $newest_effect + @effect/sql-pg $newest_sqlpg"
