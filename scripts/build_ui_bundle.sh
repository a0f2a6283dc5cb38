#!/usr/bin/env bash
# Rebuild api/server/web/verify-lib.js (+ verify-lib.LICENSES.txt), the libraries of the web page's
# in-browser verifier, from the versions pinned in package-lock.json (npm ci, then esbuild; no network
# beyond the npm registry, nothing fetched at run time). Check the result in.
#
#   ./scripts/build_ui_bundle.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/esbuild ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node scripts/ui_bundle/build.mjs "$@"
