#!/usr/bin/env bash
# Stage 0 of egs/synth/poly1: the multilingual synthetic corpus (python -m parastyle.bin.make_synth_corpus,
# languages en cmn de fr es, genders female male) as data/all with label vocabularies in data/lang;
# transcripts normalised (local/normalize_text.py). Built under data/.all.tmp, renamed at the end.
set -euo pipefail

num_utts=1500
utts_per_spk=30
seed=0
nj=2

. utils/parse_options.sh

tmp=data/.all.tmp
rm -rf "${tmp}" data/all data/lang data/wav
mkdir -p "${tmp}"
python -m parastyle.bin.make_synth_corpus --out "${tmp}/all" --lang_dir "${tmp}/lang" --wav_dir data/wav \
    --num_utts "${num_utts}" --utts_per_spk "${utts_per_spk}" --languages en,cmn,de,fr,es \
    --genders female,male --seed "${seed}" --nj "${nj}" --quiet
python local/normalize_text.py "${tmp}/all/text" "${tmp}/all/text.norm"
mv "${tmp}/all/text.norm" "${tmp}/all/text"
python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${tmp}/lang" "${tmp}/all"
mv "${tmp}/all" data/all
mv "${tmp}/lang" data/lang
rmdir "${tmp}"
echo "local/data.sh: data/all has $(wc -l < data/all/utt2spk) utterances of $(wc -l < data/all/spk2utt) speakers" >&2
