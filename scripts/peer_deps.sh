#!/usr/bin/env bash
# Creates .venv-peer (repo root) with PyTorch for the peer comparison in `make bench`.
#
# Installs torch==2.15.0 numpy mlxtend scikit-learn from PyPI: about 6 GB. The default
# PyPI torch wheel is the CUDA build and only imports with its nvidia-* dependencies;
# PyPI has no CPU-only x86_64 wheel, so the full default install is the one that works
# (it runs fine without a GPU). See shared/peer/README.md, section "torch".
# A cheap no-op when .venv-peer already imports torch.
#
# Environment: PYTHON (default python3) creates the venv; VENV (default .venv-peer).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv-peer}"
PACKAGES=(torch==2.15.0 numpy mlxtend scikit-learn)

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import torch, numpy, mlxtend, sklearn' >/dev/null 2>&1; then
    echo "peer-deps: $VENV already has $("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)')"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian's system python3 needs python3-venv for ensurepip.
        rm -rf "$VENV"
        if command -v apt-get >/dev/null 2>&1; then
            SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
            echo "peer-deps: \`$PYTHON -m venv\` failed; installing python3-venv"
            $SUDO apt-get update
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
            "$PYTHON" -m venv "$VENV"
        else
            echo "peer-deps: \`$PYTHON -m venv $VENV\` failed; install your Python's venv module." >&2
            exit 1
        fi
    fi
fi

"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install "${PACKAGES[@]}"
"$VENV/bin/python" -c 'import torch, mlxtend, sklearn; print("peer-deps: torch", torch.__version__, "ready in '"$VENV"'")'
