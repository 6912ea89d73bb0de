#!/usr/bin/env bash
# Print the floor of package.json's peer range for PACKAGE: the oldest version CI promises. The
# ranges have the form ">=X <Y" (they promise only what CI tests: scripts/test-peers.sh); any
# other form fails here, so a range edited by hand cannot slip past the checks.
#
#   scripts/peer-floor.sh effect        -> 4.0.6
set -euo pipefail
package=${1:?usage: peer-floor.sh PACKAGE}
cd "$(dirname "$0")/.."
node -e '
  const [name] = process.argv.slice(1)
  const range = require("./package.json").peerDependencies?.[name]
  const floor = /^>=(\d+\.\d+\.\d+) <\d+\.\d+\.\d+$/.exec(range ?? "")
  if (floor === null) {
    console.error(`peer-floor: the peer range of ${name} (${range}) is not of the form ">=X <Y"`)
    process.exit(1)
  }
  console.log(floor[1])' "$package"
