#!/usr/bin/env bash
# Data preparation of LJSpeech 1.1 (stage 0): writes the Kaldi dir ${data_dir} and the label
# vocabularies ${lang_dir}/<factor>.txt. Layout and label choices: local/README.md.
set -euo pipefail

ljspeech=                   # LJSpeech-1.1 root: holds metadata.csv and wavs/
data_dir=data/all           # output data dir
lang_dir=data/lang          # output label vocabularies
prefix=ljspeech             # speaker-id prefix
assume_neutral_adult=true   # label every clip neutral + adult (not annotated by the corpus)
nj=1                # accepted from style.sh; the data prep runs as one job
seed=0              # accepted from style.sh; the data prep is deterministic

. utils/parse_options.sh

if [ -z "${ljspeech}" ] || [ ! -f "${ljspeech}/metadata.csv" ] || [ ! -d "${ljspeech}/wavs" ]; then
  cat >&2 <<MSG
local/data.sh: LJSpeech not found (ljspeech='${ljspeech}': expected metadata.csv and wavs/ there).
  Download https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2 (https://keithito.com/LJ-Speech-Dataset/),
  unpack it and set ljspeech=/path/to/LJSpeech-1.1 in run.sh or pass --ljspeech /path/to/LJSpeech-1.1.
MSG
  exit 1
fi

echo "local/data.sh: preparing LJSpeech from ${ljspeech} into ${data_dir}"
tmp=${data_dir}.tmp
rm -rf "${tmp}"
python local/prepare_ljspeech.py --corpus "${ljspeech}" --out "${tmp}" --lang "${lang_dir}" \
  --prefix "${prefix}" --assume_neutral_adult "${assume_neutral_adult}"
utils/validate_data_dir.sh --no-feats --lang-dir "${lang_dir}" "${tmp}"
rm -rf "${data_dir}"
mv "${tmp}" "${data_dir}"
