#!/usr/bin/env bash
# Run the whole test suite (bootstraps first): the static checks (ruff lint and format, mypy strict,
# import-linter's architecture contracts), then pytest. Extra arguments go to pytest.
# Every part runs even if an earlier one fails; the exit code is non-zero if any failed.
# pytest's exit code 5 ("no tests collected") is treated as a failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/bootstrap.sh" --test-tools || exit 1
cd "$ROOT"
failed=()
check() {
  local name="$1"; shift
  echo "== $name: $*" >&2
  "$@" || failed+=("$name")
}
if [ "${SECUREFLOW_TEST_PYTEST_ONLY:-}" != 1 ]; then  # set only by tests/test_bootstrap.py's own run
  check "ruff lint" .venv/bin/ruff check .
  check "ruff format" .venv/bin/ruff format --check .
  check "mypy" .venv/bin/mypy
  check "import contracts" .venv/bin/lint-imports
fi
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests; that is a failure of the suite, not a pass" >&2
  rc=1
fi
[ "$rc" -eq 0 ] || failed+=("pytest (exit code $rc)")
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
