#!/usr/bin/env bash
# Installs what Flock's build, tests and data script need, and nothing when it is all there.
#
#   apt (Debian/Ubuntu): libsodium-dev libssl-dev libopenblas-dev libsqlite3-dev pkg-config
#                        protobuf-compiler python3 python3-pip zlib1g-dev
#   pip (for $PYTHON):   mlxtend scikit-learn onnx onnxruntime (onnx export tests)
#
# Checks first (`dpkg -s`, `$PYTHON -c 'import mlxtend, sklearn, onnx, onnxruntime'`); runs `apt-get update`
# once and installs only when something is missing. Uses sudo only when not root.
# The Swift toolchain itself is not installed here (see swift.org/install).
#
# Environment: PYTHON (default python3).
set -euo pipefail

PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(libsodium-dev libssl-dev libopenblas-dev libsqlite3-dev pkg-config protobuf-compiler python3 python3-pip zlib1g-dev)
PIP_PACKAGES=(mlxtend scikit-learn onnx onnxruntime)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        SUDO="__no_sudo__"
    fi
fi
need_root() {
    if [ "$SUDO" = "__no_sudo__" ]; then
        echo "deps: $1 needs root and sudo is not installed; run \`make deps\` as root." >&2
        exit 1
    fi
}

# --- system packages --------------------------------------------------------
if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        need_root "installing ${missing[*]}"
        echo "deps: apt-get install ${missing[*]}"
        $SUDO apt-get update
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    fi
else
    echo "deps: no dpkg/apt-get here; make sure these (or your system's equivalents) are installed:" \
         "${APT_PACKAGES[*]}" >&2
fi

# --- Python packages for scripts/fetch_data.py -------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "deps: $PYTHON not found; install Python 3 or set PYTHON=/path/to/python3." >&2
    exit 1
fi
if ! "$PYTHON" -c 'import mlxtend, sklearn, onnx, onnxruntime' >/dev/null 2>&1; then
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
        "$PYTHON" -m ensurepip --upgrade >/dev/null 2>&1 || {
            echo "deps: pip is missing for $PYTHON (and ensurepip is unavailable); install python3-pip." >&2
            exit 1
        }
    fi
    # managed: a distribution Python with PEP 668's EXTERNALLY-MANAGED marker (Debian 12+),
    #          outside a virtualenv; pip then refuses to install without --break-system-packages.
    # writable: whether this user can write the interpreter's site-packages.
    read -r managed writable < <("$PYTHON" - <<'PY'
import os, sys, sysconfig
venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
managed = (not venv) and os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
print(int(managed), int(os.access(sysconfig.get_path("purelib"), os.W_OK)))
PY
)
    pip_cmd=("$PYTHON" -m pip install)
    if [ "$managed" = 1 ] && "$PYTHON" -m pip install --help 2>/dev/null | grep -q -- '--break-system-packages'; then
        pip_cmd+=(--break-system-packages)
    fi
    if [ "$writable" = 0 ]; then
        pip_cmd+=(--user)
    fi
    echo "deps: ${pip_cmd[*]} ${PIP_PACKAGES[*]}"
    "${pip_cmd[@]}" "${PIP_PACKAGES[@]}"
    "$PYTHON" -c 'import mlxtend, sklearn, onnx, onnxruntime' || {
        echo "deps: installed ${PIP_PACKAGES[*]} but $PYTHON still cannot import them." >&2
        exit 1
    }
fi

if ! command -v swift >/dev/null 2>&1; then
    echo "deps: note: no \`swift\` on PATH; build and test need a Swift 6 toolchain (swift.org/install)." >&2
fi
