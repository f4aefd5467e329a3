#!/usr/bin/env bash
# Stage 0 of egs/synth/style1: generate the synthetic corpus (espeak-ng) as data/all and its
# label vocabularies in data/lang. Both are built under data/.all.tmp and renamed at the end;
# the wavs go to data/wav (referenced by absolute paths in wav.scp).
set -euo pipefail

num_utts=3000
utts_per_spk=10
seed=0
nj=2

. utils/parse_options.sh

tmp=data/.all.tmp
rm -rf "${tmp}" data/all data/lang data/wav
mkdir -p "${tmp}"
python -m parastyle.bin.make_synth_corpus --out "${tmp}/all" --lang_dir "${tmp}/lang" --wav_dir data/wav \
    --num_utts "${num_utts}" --utts_per_spk "${utts_per_spk}" --seed "${seed}" --nj "${nj}" --quiet
python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${tmp}/lang" "${tmp}/all"
mv "${tmp}/all" data/all
mv "${tmp}/lang" data/lang
rmdir "${tmp}"
echo "local/data.sh: data/all has $(wc -l < data/all/utt2spk) utterances of $(wc -l < data/all/spk2utt) speakers" >&2
