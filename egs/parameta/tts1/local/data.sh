#!/usr/bin/env bash
# Stage 0 of egs/parameta/tts1: the data preparation of egs/parameta/style1 (ParaMETA's mix of
# CREMA-D, ESD, LJSpeech and Baker on the paper's label sets), run from that recipe, into this
# recipe's ${data_dir}, ${lang_dir} and ${local_dir}.
set -euo pipefail

cremad=
esd=
ljspeech=
baker=
corpora=cremad,esd,ljspeech,baker
data_dir=data/all
lang_dir=data/lang
local_dir=data/local
nj=1                # accepted from tts.sh
seed=0              # accepted from tts.sh

. utils/parse_options.sh

abs() { mkdir -p "$(dirname "$1")"; echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
args=(--corpora "${corpora}" --data_dir "$(abs "${data_dir}")" --lang_dir "$(abs "${lang_dir}")"
      --local_dir "$(abs "${local_dir}")")
for corpus in cremad esd ljspeech baker; do
    p=${!corpus}
    if [ -n "${p}" ] && [ -d "${p}" ]; then p=$(cd "${p}" && pwd); fi
    [ -z "${p}" ] || args+=(--"${corpus}" "${p}")
done
(cd ../style1 && bash local/data.sh "${args[@]}")
