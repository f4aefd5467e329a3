#!/usr/bin/env bash
# Stage 0 of egs/synth/clap1: generate the synthetic corpus into data/all + data/lang.
set -euo pipefail

nj=2
num_utts=1200
utts_per_spk=8
seed=0

. utils/parse_options.sh

if [ -f data/all/utt2spk ]; then
    echo "$0: data/all already generated (remove data/all to regenerate)" >&2
    exit 0
fi
rm -rf data/all.tmp
python -m parastyle.bin.make_synth_corpus --out data/all.tmp --wav_dir data/wav --lang_dir data/lang \
    --num_utts "${num_utts}" --utts_per_spk "${utts_per_spk}" --seed "${seed}" --nj "${nj}" --quiet
# wav.scp holds absolute paths, so the directory can be renamed once it is complete.
rm -rf data/all
mv data/all.tmp data/all
