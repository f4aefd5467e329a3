#!/usr/bin/env bash
# Data preparation of IEMOCAP (stage 0): data/all (4 classes), data/lang/{emotion,gender}.txt and
# the five leave-one-session-out folds data/fold<n>/{train,dev,test}. Layout: local/README.md.
set -euo pipefail

iemocap=            # IEMOCAP_full_release: holds Session1 ... Session5
lang_dir=data/lang
nj=1                # accepted from vib.sh
seed=0              # dev utterances of each fold

. utils/parse_options.sh

if [ -z "${iemocap}" ] || [ ! -d "${iemocap}/Session1" ]; then
  cat >&2 <<MSG
local/data.sh: IEMOCAP not found (iemocap='${iemocap}': expected Session1 ... Session5 there).
  IEMOCAP is distributed by USC SAIL on request (https://sail.usc.edu/iemocap/); unpack
  IEMOCAP_full_release and pass --iemocap /path/to/IEMOCAP_full_release.
MSG
  exit 1
fi

tmp=data/.iemocap.tmp
rm -rf "${tmp}"
python local/prepare_iemocap.py --root "${iemocap}" --out "${tmp}/all" --lang "${lang_dir}" \
    --folds "${tmp}/lists" --seed "${seed}"
python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${lang_dir}" "${tmp}/all"
for n in 1 2 3 4 5; do
  for s in train dev test; do
    python -m parastyle.bin.subset_data_dir --utt-list "${tmp}/lists/fold${n}/${s}.list" \
        "${tmp}/all" "${tmp}/fold${n}/${s}"
  done
done
rm -rf data/all data/fold[1-5]
mv "${tmp}/all" data/all
for n in 1 2 3 4 5; do mv "${tmp}/fold${n}" "data/fold${n}"; done
rm -rf "${tmp}"
