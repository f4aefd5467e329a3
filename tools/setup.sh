#!/usr/bin/env bash
# Create (or reuse) the parastyle environment: tools/venv with pinned packages,
# parastyle installed in editable mode, and espeak-ng for the synthetic corpus.
#
#   bash tools/setup.sh            # CPU/CUDA wheels of torch 2.11.0 from PyPI
#   PARASTYLE_TORCH=system bash tools/setup.sh
#                                  # venv with --system-site-packages: use the torch/torchaudio
#                                  # already installed for your CUDA (GPU clusters)
set -euo pipefail
tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$tools_dir")
venv=$tools_dir/venv
python=${PYTHON:-python3}
stamp=$venv/.parastyle_setup_done

if ! command -v espeak-ng >/dev/null 2>&1; then
  echo "setup: espeak-ng not found; installing the Debian package" >&2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null) || {
      echo "setup: could not install espeak-ng; run: sudo apt-get install espeak-ng" >&2; exit 1; }
  else
    echo "setup: please run: sudo apt-get install espeak-ng" >&2; exit 1
  fi
fi

if [ -f "$stamp" ] && [ "$stamp" -nt "$tools_dir/constraints.txt" ] && [ "$stamp" -nt "$root/setup.py" ]; then
  exit 0
fi

echo "setup: creating $venv" >&2
if [ "${PARASTYLE_TORCH:-pypi}" = system ]; then
  "$python" -m venv --system-site-packages "$venv"
  "$venv/bin/python" -c "import torch, torchaudio" || {
    echo "setup: PARASTYLE_TORCH=system but torch/torchaudio are not importable by $python" >&2; exit 1; }
  grep -v -E '^(torch|torchaudio|triton|nvidia-|cuda-)' "$tools_dir/constraints.txt" > "$venv/constraints.txt"
  reqs=$(grep -v -E '^(#|torch|torchaudio)' "$tools_dir/requirements.txt")
else
  "$python" -m venv "$venv"
  cp "$tools_dir/constraints.txt" "$venv/constraints.txt"
  reqs=$(grep -v '^#' "$tools_dir/requirements.txt")
fi
"$venv/bin/pip" install -q --upgrade pip
# shellcheck disable=SC2086
"$venv/bin/pip" install -q -c "$venv/constraints.txt" $reqs
"$venv/bin/pip" install -q --no-deps -e "$root"
touch "$stamp"
echo "setup: done ($venv)" >&2
