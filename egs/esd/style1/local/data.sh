#!/usr/bin/env bash
# Data preparation of ESD (stage 0): writes the Kaldi dir ${data_dir} and the label
# vocabularies ${lang_dir}/<factor>.txt. Layout and label mapping: local/README.md.
set -euo pipefail

esd=                # ESD root: holds the speaker folders 0001/ ... 0020/
data_dir=data/all   # output data dir
lang_dir=data/lang  # output label vocabularies
prefix=esd          # speaker-id prefix
nj=1                # accepted from style.sh; the data prep runs as one job
seed=0              # accepted from style.sh; the data prep is deterministic

. utils/parse_options.sh

if [ -z "${esd}" ] || ! ls -d "${esd}"/00[0-2][0-9] >/dev/null 2>&1; then
  cat >&2 <<MSG
local/data.sh: ESD not found (esd='${esd}': expected the speaker folders 0001/ ... 0020/ there).
  Obtain the Emotional Speech Dataset from https://github.com/HLTSingapore/Emotional-Speech-Data
  (licence form, then a download link) and unpack it. The speaker folders are in a folder named
  'Emotion Speech Dataset'; wav.scp cannot hold the spaces, so link it:
  ln -s '/path/to/Emotion Speech Dataset' /path/to/ESD, then set esd=/path/to/ESD in run.sh or
  pass --esd /path/to/ESD.
MSG
  exit 1
fi

echo "local/data.sh: preparing ESD from ${esd} into ${data_dir}"
tmp=${data_dir}.tmp
rm -rf "${tmp}"
python local/prepare_esd.py --corpus "${esd}" --out "${tmp}" --lang "${lang_dir}" --prefix "${prefix}"
utils/validate_data_dir.sh --no-feats --lang-dir "${lang_dir}" "${tmp}"
rm -rf "${data_dir}"
mv "${tmp}" "${data_dir}"
