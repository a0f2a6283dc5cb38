#!/usr/bin/env bash
# Run the whole test suite (bootstraps first). Extra arguments go to pytest.
# pytest's exit code 5 ("no tests collected") is treated as a failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh" --test-tools || exit 1
cd "$ROOT"
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests; that is a failure of the suite, not a pass" >&2
  exit 1
fi
exit "$rc"
