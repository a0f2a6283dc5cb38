#!/usr/bin/env bash
# Run the demo end to end on the embedded default (bootstraps first).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/secureflow" demo "$@"
