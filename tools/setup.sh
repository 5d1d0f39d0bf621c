#!/usr/bin/env bash
# Idempotent set-up: system libraries for grease-pencil rendering, .venv with pinned packages,
# Atelier installed in development mode (as `atelier.core`, with the checkout's `core` on sys.path).
# Quick when already done; says which step failed and why.
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
fail() { printf '\033[31m[setup] FAILED: %s\033[0m\n' "$*" >&2; exit 1; }

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || fail "Python 3.11 is required (bpy 5.0.1 exists only for 3.11); install python3.11 or set PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null || fail "$PYTHON is not Python 3.11"

# 1. EGL/Mesa: without them any grease-pencil render aborts the process.
SYSTEM_PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri"
missing=""
for package in $SYSTEM_PACKAGES; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    step "installing system packages:$missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
      || fail "apt-get could not install$missing"
  elif command -v apt-get >/dev/null && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    step "installing system packages with sudo:$missing"
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
      || fail "apt-get could not install$missing"
  else
    echo "[setup] WARNING: grease-pencil renders need EGL. Please run:  sudo apt-get install$missing" >&2
  fi
fi

# 2. The virtual environment, reinstalled only when pyproject.toml changes.
if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PYTHON" -m venv .venv || fail "could not create .venv with $PYTHON"
fi
# The source tree's `core` (the installed package is `atelier.core`), for `python -m core.cli` and the
# scripts in bench/, demo/ and tools/ wherever they run from: the checkout on .venv's sys.path.
.venv/bin/python -c 'import sys, sysconfig; from pathlib import Path
Path(sysconfig.get_paths()["purelib"], "atelier-checkout.pth").write_text(sys.argv[1] + "\n")' "$PWD" \
  || fail "could not put the checkout on .venv's sys.path"
stamp=.venv/.atelier-setup
wanted=$(sha256sum pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  step "installing Python packages into .venv (bpy 5.0.1, CPU torch 2.13.0, ...)"
  .venv/bin/python -m pip install -q --upgrade pip || fail "pip could not upgrade itself"
  # torch pinned to the CPU build: a plain 'torch' would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0" || fail "pip could not install torch==2.13.0 (the CPU build)"
  .venv/bin/python -m pip install -q -e ".[blender,dev,ray]" || fail "pip could not install Atelier's dependencies (see pyproject.toml)"
  .venv/bin/python - <<'PY' || fail "the installed torch is not the CPU build"
import torch
assert torch.version.cuda is None, torch.__version__
import ray  # the optional extra the scale-out tests use (tests/test_scale.py)
PY
  echo "$wanted" > "$stamp"
fi
# 3. Blender's own Python, for the tests that run Atelier as an artist installs it: a venv with
#    bpy alone has exactly the modules Blender 5.0 bundles (numpy, OpenImageIO, requests, ...),
#    and no torch, OpenCV, Pillow or safetensors.
if [ ! -x .venv-blender/bin/python ] || ! .venv-blender/bin/python -c 'import bpy' 2>/dev/null; then
  step "creating .venv-blender (bpy 5.0.1 only: Blender's own Python)"
  rm -rf .venv-blender
  "$PYTHON" -m venv .venv-blender || fail "could not create .venv-blender with $PYTHON"
  .venv-blender/bin/python -m pip install -q "bpy==5.0.1" || fail "pip could not install bpy==5.0.1 into .venv-blender"
fi

step "ready: $(.venv/bin/python -c 'import bpy, torch, numpy; print(f"Blender {bpy.app.version_string}, torch {torch.__version__}, numpy {numpy.__version__}")' 2>/dev/null || echo '?')"
