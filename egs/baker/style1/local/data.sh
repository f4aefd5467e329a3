#!/usr/bin/env bash
# Data preparation of Baker CSMSC / BZNSYP (stage 0): writes the Kaldi dir ${data_dir} and the
# label vocabularies ${lang_dir}/<factor>.txt. Layout and label choices: local/README.md.
set -euo pipefail

baker=              # BZNSYP root: holds Wave/ and ProsodyLabeling/000001-010000.txt
data_dir=data/all   # output data dir
lang_dir=data/lang  # output label vocabularies
prefix=baker        # speaker-id prefix
nj=1                # accepted from style.sh; the data prep runs as one job
seed=0              # accepted from style.sh; the data prep is deterministic

. utils/parse_options.sh

if [ -z "${baker}" ] || [ ! -d "${baker}/Wave" ] || [ ! -f "${baker}/ProsodyLabeling/000001-010000.txt" ]; then
  cat >&2 <<MSG
local/data.sh: Baker CSMSC not found (baker='${baker}': expected Wave/ and
  ProsodyLabeling/000001-010000.txt there). Obtain BZNSYP from DataBaker
  (https://www.data-baker.com/open_source.html, non-commercial licence), unpack BZNSYP.rar and
  set baker=/path/to/BZNSYP in run.sh or pass --baker /path/to/BZNSYP.
MSG
  exit 1
fi

echo "local/data.sh: preparing Baker CSMSC from ${baker} into ${data_dir}"
tmp=${data_dir}.tmp
rm -rf "${tmp}"
python local/prepare_baker.py --corpus "${baker}" --out "${tmp}" --lang "${lang_dir}" --prefix "${prefix}"
utils/validate_data_dir.sh --no-feats --lang-dir "${lang_dir}" "${tmp}"
rm -rf "${data_dir}"
mv "${tmp}" "${data_dir}"
