#!/usr/bin/env bash
# Stage 0 of egs/esd/tts1: the data preparation of egs/esd/style1 (local/data.sh there, run from
# that recipe) into this recipe's ${data_dir} and ${lang_dir}. Layout and labels: ../style1/local/README.md.
set -euo pipefail

esd=                # ESD root: holds the speaker folders 0001/ ... 0020/
data_dir=data/all
lang_dir=data/lang
nj=1                # accepted from tts.sh
seed=0              # accepted from tts.sh

. utils/parse_options.sh

mkdir -p "$(dirname "${data_dir}")" "$(dirname "${lang_dir}")"
data_abs=$(cd "$(dirname "${data_dir}")" && pwd)/$(basename "${data_dir}")
lang_abs=$(cd "$(dirname "${lang_dir}")" && pwd)/$(basename "${lang_dir}")
esd_abs=${esd}
if [ -n "${esd}" ] && [ -d "${esd}" ]; then esd_abs=$(cd "${esd}" && pwd); fi
(cd ../style1 && bash local/data.sh --esd "${esd_abs}" --data_dir "${data_abs}" --lang_dir "${lang_abs}")
