#!/usr/bin/env bash
# Set up bigpaint in a virtual environment on a fresh machine.
#
#   bash deploy/install.sh            # the package
#   bash deploy/install.sh test       # plus the test tools
#   bash deploy/install.sh gpu        # plus dask-cuda (bring your CUDA torch first)
#
# torch: if the environment already imports torch (your CUDA or CPU build), it is kept.
# Otherwise BIGPAINT_TORCH (default torch==2.13.0) is installed first, so that pip never
# resolves the bare 'torch' requirement to a multi-GB CUDA build on a CPU machine. Where pip's
# index would give a CUDA build, point BIGPAINT_TORCH_INDEX at PyTorch's CPU wheel index to
# get the CPU build from there.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
venv="${BIGPAINT_VENV:-.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  torch_spec="${BIGPAINT_TORCH:-torch==2.13.0}"
  echo "[install] torch not found in $venv: installing $torch_spec" >&2
  if [ -n "${BIGPAINT_TORCH_INDEX:-}" ]; then
    "${pip[@]}" "$torch_spec" --index-url "$BIGPAINT_TORCH_INDEX"
  else
    "${pip[@]}" "$torch_spec"
  fi
fi

target="."
[ -n "$extras" ] && target=".[$extras]"
echo "[install] installing bigpaint$([ -n "$extras" ] && echo "[$extras]") into $venv" >&2
"${pip[@]}" -e "$target"
"$venv/bin/python" -c "import bigpaint, torch; print('[install] bigpaint', bigpaint.__version__, '| torch', torch.__version__)" >&2
