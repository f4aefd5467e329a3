#!/usr/bin/env bash
# Stage 0 of egs/aishell/poly1: AISHELL-1 (its own train/dev/test speakers) -> data/{train,dev,test} + data/lang.
set -euo pipefail
aishell_root=/corpora/aishell     # holds data_aishell/ and resource_aishell/
nj=2
seed=0
. utils/parse_options.sh
tmp=data/.prep.tmp
rm -rf "${tmp}"
python local/prepare_aishell.py --root "${aishell_root}" --out "${tmp}" --lang_dir "${tmp}/lang"
for s in train dev test; do
    python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${tmp}/lang" "${tmp}/${s}"
done
for s in train dev test lang; do rm -rf "data/${s}"; mv "${tmp}/${s}" "data/${s}"; done
rmdir "${tmp}"
