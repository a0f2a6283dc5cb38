#!/usr/bin/env bash
# Idempotent set-up of everything secureflow needs on a fresh machine:
#   uv (pinned, from PyPI, into .tools/), a Python 3.10 .venv with the locked
#   project (SecretFlow included), and the pinned npm toolchain (anvil, solcjs,
#   OpenZeppelin). A second run with everything in place takes about a second.
#   With --test-tools (scripts/test.sh) also what only the test suite needs:
#   Debian's chromium (browser tests), Debian's prometheus (promtool: alert
#   rules) and the slither venv (static analysis),
#   so that the demo does not need root for apt-get.
set -euo pipefail
TEST_TOOLS=0
for arg in "$@"; do
  case "$arg" in
    --test-tools) TEST_TOOLS=1 ;;
    *) echo "usage: scripts/bootstrap.sh [--test-tools]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV_VERSION="0.13.9"
STAMP_DIR="$ROOT/.venv/.secureflow-bootstrap"

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[bootstrap] error:\033[0m %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

find_uv() {
  if [ -x "$ROOT/.tools/bin/uv" ] && "$ROOT/.tools/bin/uv" --version 2>/dev/null | grep -q "uv $UV_VERSION"; then
    echo "$ROOT/.tools/bin/uv"; return
  fi
  if command -v uv >/dev/null 2>&1 && uv --version | grep -q "uv $UV_VERSION"; then
    command -v uv; return
  fi
  say "installing uv $UV_VERSION into .tools/ (from PyPI)"
  local host_python
  host_python="$(command -v python3 || true)"
  [ -n "$host_python" ] || die "python3 is needed once to install uv; install python3 (any version) first"
  "$host_python" -m venv "$ROOT/.tools" >&2 || die "python3 -m venv failed: install the python3-venv package"
  "$ROOT/.tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2 \
    || die "could not install uv==$UV_VERSION from PyPI"
  echo "$ROOT/.tools/bin/uv"
}

is_py310() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; }

find_python310() {
  local candidate
  if [ -n "${SECUREFLOW_PYTHON:-}" ]; then
    is_py310 "$SECUREFLOW_PYTHON" || die "SECUREFLOW_PYTHON=$SECUREFLOW_PYTHON is not a working Python 3.10"
    echo "$SECUREFLOW_PYTHON"; return
  fi
  candidate="$("$UV" python find --system --no-python-downloads 3.10 2>/dev/null || true)"
  if is_py310 "$candidate"; then echo "$candidate"; return; fi
  local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
  command -v pyenv >/dev/null 2>&1 && pyenv_root="$(pyenv root)"
  for candidate in "$pyenv_root"/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if is_py310 "$candidate"; then echo "$candidate"; return; fi
  done
  die "no Python 3.10 found (SecretFlow ships cp310 wheels only): install it (pyenv install 3.10, or apt) or set SECUREFLOW_PYTHON"
}

UV="$(find_uv)"

# --- Python environment -------------------------------------------------------
PY_HASH="$(hash_of pyproject.toml uv.lock)"
if [ -x .venv/bin/python ] && [ "$(cat "$STAMP_DIR/python" 2>/dev/null)" = "$PY_HASH" ]; then
  :
else
  PY310="$(find_python310)"
  say "syncing .venv with uv.lock (Python: $PY310); the first run downloads SecretFlow (~1 GB)"
  "$UV" sync --frozen --python "$PY310" --no-python-downloads >&2 || die "uv sync failed (see above)"
  mkdir -p "$STAMP_DIR" && echo "$PY_HASH" >"$STAMP_DIR/python"
fi
# mypy cannot follow the editable install's import hook (secureflow.api -> api/): give it the installed
# names as links (pyproject.toml: [tool.mypy] mypy_path)
mkdir -p .tools/typing/secureflow
for pkg in api compute ledger; do
  [ -L ".tools/typing/secureflow/$pkg" ] || ln -sfn "../../../$pkg" ".tools/typing/secureflow/$pkg"
done
[ -L .tools/typing/secureflow/client ] || ln -sfn ../../../api/client/_alias .tools/typing/secureflow/client

# --- npm toolchain (anvil, forge, solcjs, OpenZeppelin) ------------------------------
command -v npm >/dev/null 2>&1 || die "npm (Node.js >= 18) is needed for anvil and solc: apt-get install nodejs npm"
NPM_HASH="$(hash_of package.json package-lock.json)"
if [ -d node_modules ] && [ "$(cat "$STAMP_DIR/npm" 2>/dev/null)" = "$NPM_HASH" ]; then
  :
else
  say "installing the pinned npm toolchain (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed (see above)"
  mkdir -p "$STAMP_DIR" && echo "$NPM_HASH" >"$STAMP_DIR/npm"
fi

# --- API docs pages (Swagger UI, ReDoc) served offline from the pinned npm packages ---------
# copied next to the web page so the API never loads them from a CDN (api/server/routes/docs.py)
VENDOR=api/server/web/vendor
mkdir -p "$VENDOR"
for pair in \
  "swagger-ui-dist/swagger-ui-bundle.js:swagger-ui-bundle.js" \
  "swagger-ui-dist/swagger-ui.css:swagger-ui.css" \
  "swagger-ui-dist/LICENSE:swagger-ui-LICENSE" \
  "redoc/bundles/redoc.standalone.js:redoc.standalone.js" \
  "redoc/LICENSE:redoc-LICENSE"; do
  src="node_modules/${pair%%:*}"; dst="$VENDOR/${pair##*:}"
  [ -f "$src" ] || die "$src is missing after npm ci: delete node_modules and re-run"
  cmp -s "$src" "$dst" 2>/dev/null || cp "$src" "$dst"
done

ANVIL_BIN="$(ls node_modules/@foundry-rs/anvil-*/bin/anvil 2>/dev/null | head -1 || true)"
[ -n "$ANVIL_BIN" ] && "$ANVIL_BIN" --version >/dev/null 2>&1 \
  || die "the anvil binary from @foundry-rs/anvil is missing or does not run: delete node_modules and re-run"
FORGE_BIN="$(ls node_modules/@foundry-rs/forge-*/bin/forge 2>/dev/null | head -1 || true)"
[ -n "$FORGE_BIN" ] && "$FORGE_BIN" --version >/dev/null 2>&1 \
  || die "the forge binary from @foundry-rs/forge-linux-amd64 is missing or does not run: delete node_modules and re-run"

[ "$TEST_TOOLS" = 1 ] || exit 0

# --- chromium (Debian's package; the web UI's browser tests drive it with Playwright) ---
# Playwright's own browser download cannot work here: never run `playwright install`.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
CHROMIUM_BIN="/usr/bin/chromium"
chromium_runs() { [ -x "$CHROMIUM_BIN" ] && "$CHROMIUM_BIN" --version >/dev/null 2>&1; }
if ! chromium_runs; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 \
      || die "chromium is missing and installing it needs root: run 'apt-get install chromium' as root (or install sudo), then re-run"
    SUDO="sudo"
  fi
  apt_install_chromium() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >&2
  }
  say "installing Debian's chromium with apt-get (for the web UI's browser tests)"
  apt_install_chromium \
    || { say "apt-get install failed; refreshing the package lists (apt-get update) and retrying"; \
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update >&2 && apt_install_chromium; } \
    || die "could not install Debian's chromium package (see apt-get's output above): install it by hand with 'apt-get install chromium'"
  chromium_runs || die "$CHROMIUM_BIN is installed but does not run ('$CHROMIUM_BIN --version' fails): see its output"
fi

# --- promtool (Debian's prometheus package): the alert rules' checks and unit tests -------------
# tests/test_ops.py runs `promtool check rules`, `promtool test rules` and `promtool check config` on
# scripts/ops/prometheus/. Only promtool is used; where services start on install (not in containers
# with a policy-rc.d), Debian also starts a Prometheus server: `systemctl disable --now prometheus`.
promtool_runs() { command -v promtool >/dev/null 2>&1 && promtool --version >/dev/null 2>&1; }
if ! promtool_runs; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 \
      || die "promtool is missing and installing it needs root: run 'apt-get install prometheus' as root (or install sudo), then re-run"
    SUDO="sudo"
  fi
  apt_install_prometheus() {
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >&2
  }
  say "installing Debian's prometheus package with apt-get (promtool, for the alert rules' tests)"
  apt_install_prometheus \
    || { say "apt-get install failed; refreshing the package lists (apt-get update) and retrying"; \
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update >&2 && apt_install_prometheus; } \
    || die "could not install Debian's prometheus package (see apt-get's output above): install it by hand with 'apt-get install prometheus'"
  promtool_runs || die "promtool is installed but does not run ('promtool --version' fails): see its output"
fi

# --- slither (static analysis of contracts/src) in its own venv: it pins web3<8 -------------
# Installed from the hash-locked tools/slither-requirements.txt; tests/contracts/test_slither.py runs it.
SLITHER_VENV="$ROOT/.tools/slither-venv"
SLITHER_HASH="$(hash_of tools/slither-requirements.txt)"
if [ -x "$SLITHER_VENV/bin/slither" ] && [ "$(cat "$STAMP_DIR/slither" 2>/dev/null)" = "$SLITHER_HASH" ]; then
  :
else
  say "installing slither into .tools/slither-venv (from tools/slither-requirements.txt)"
  SLITHER_PY="${PY310:-$(find_python310)}"
  rm -rf "$SLITHER_VENV"
  "$UV" venv --quiet --python "$SLITHER_PY" --no-python-downloads "$SLITHER_VENV" >&2 \
    || die "could not create .tools/slither-venv with $SLITHER_PY (see above)"
  "$UV" pip sync --quiet --python "$SLITHER_VENV/bin/python" --require-hashes tools/slither-requirements.txt >&2 \
    || die "could not install slither from tools/slither-requirements.txt (see above); if a pin was withdrawn, regenerate the file with the command in its header"
  "$SLITHER_VENV/bin/slither" --version >/dev/null 2>&1 \
    || die "slither in .tools/slither-venv does not run ('.tools/slither-venv/bin/slither --version' fails): delete .tools/slither-venv and re-run"
  mkdir -p "$STAMP_DIR" && echo "$SLITHER_HASH" >"$STAMP_DIR/slither"
fi
