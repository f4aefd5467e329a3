#!/usr/bin/env bash
# ParaMETA's training mix (CREMA-D + ESD + LJSpeech + Baker on the paper's label sets): style-
# controlled TTS on GPU (egs/TEMPLATE/tts1/tts.sh) as the paper's second half: phonemes (espeak-ng,
# Mandarin + English) -> fastspeech_style at the paper's text-encoder size, conditioned on ParaMETA
# subspace vectors (speech / text / manipulated prompts) -> HiFi-GAN. Every variable below can be
# overridden as --name value, e.g.
#   ./run.sh --cremad /data/CREMA-D --esd /data/ESD --ljspeech /data/LJSpeech-1.1 --baker /data/BZNSYP --ngpu 1
set -euo pipefail

cremad=                     # corpus roots: see egs/<corpus>/style1/local/README.md
esd=
ljspeech=
baker=
corpora=cremad,esd,ljspeech,baker
stage=0
stop_stage=100
nj=8
seed=0
split_args="--dev 0.1 --test 0.1"

. ./path.sh
. ./cmd.sh
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

data_args="--corpora ${corpora}"
for corpus in cremad esd ljspeech baker; do
    [ -z "${!corpus}" ] || data_args+=" --${corpus} ${!corpus}"
done
./tts.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" \
    --data_args "${data_args}" \
    --split_args "${split_args}" \
    --feats_conf conf/feats.yaml \
    "$@"
