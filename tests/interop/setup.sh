#!/usr/bin/env bash
# Create tests/interop/.venv (if missing) and install the pinned interop-test deps into it,
# and the pinned npm clients into tests/interop/js/node_modules (npm ci from package-lock).
# Idempotent, quiet, needs no stdin.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" </dev/null
fi

# Skip the pip run when the installed set already matches requirements.txt exactly.
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    "$VENV/bin/python" -m pip install -q -r "$HERE/requirements.txt" </dev/null
    echo "$WANT" > "$STAMP"
fi

# The same for the npm clients, keyed on the lock file.
JS="$HERE/js"
JS_STAMP="$JS/node_modules/.package-lock.sha256"
JS_WANT="$(sha256sum "$JS/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$JS_STAMP" ] || [ "$(cat "$JS_STAMP")" != "$JS_WANT" ]; then
    (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error </dev/null)
    echo "$JS_WANT" > "$JS_STAMP"
fi
