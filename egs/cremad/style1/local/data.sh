#!/usr/bin/env bash
# Data preparation of CREMA-D (stage 0): writes the Kaldi dir ${data_dir} and the label
# vocabularies ${lang_dir}/<factor>.txt. Layout and label mapping: local/README.md.
set -euo pipefail

cremad=             # CREMA-D root: holds AudioWAV/ and VideoDemographics.csv
data_dir=data/all   # output data dir
lang_dir=data/lang  # output label vocabularies
prefix=cremad       # speaker-id prefix
nj=1                # accepted from style.sh; the data prep runs as one job
seed=0              # accepted from style.sh; the data prep is deterministic

. utils/parse_options.sh

if [ -z "${cremad}" ] || [ ! -d "${cremad}/AudioWAV" ] || [ ! -f "${cremad}/VideoDemographics.csv" ]; then
  cat >&2 <<MSG
local/data.sh: CREMA-D not found (cremad='${cremad}': expected AudioWAV/ and VideoDemographics.csv there).
  Obtain it from https://github.com/CheyneyComputerScience/CREMA-D (git lfs clone; the audio is
  in AudioWAV/, also mirrored on Kaggle), then set cremad=/path/to/CREMA-D in run.sh or pass
  --cremad /path/to/CREMA-D.
MSG
  exit 1
fi

echo "local/data.sh: preparing CREMA-D from ${cremad} into ${data_dir}"
tmp=${data_dir}.tmp
rm -rf "${tmp}"
python local/prepare_cremad.py --corpus "${cremad}" --out "${tmp}" --lang "${lang_dir}" --prefix "${prefix}"
utils/validate_data_dir.sh --no-feats --lang-dir "${lang_dir}" "${tmp}"
rm -rf "${data_dir}"
mv "${tmp}" "${data_dir}"
