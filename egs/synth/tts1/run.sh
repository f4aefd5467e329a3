#!/usr/bin/env bash
# Style-controlled TTS on the synthetic corpus (espeak-ng; emotion, gender, age, language known):
# phonemes -> fastspeech_style conditioned on ParaMETA style vectors -> log-mel -> vocoder,
# judged by independent classifiers / ASR trained on ground truth. Every variable below can be
# overridden as --name value, e.g. ./run.sh --stage 6 --tts_args "--train.max_steps 500".
set -euo pipefail

stage=0
stop_stage=100
num_utts=2000               # corpus size (200 speakers of 10 utterances; the 40-min CPU budget)
utts_per_spk=10
seed=0
nj=2
split_args="--dev 0.1 --test 0.15"   # fractions of the speakers
vocoder=griffin_lim         # griffin_lim (no training; the CPU default) | neural (conf/train_vocoder.yaml: HiFi-GAN, beyond the 40-min CPU budget)
max_synth_utts=150          # test utterances per prompt type
bon_prompts=30              # best-of-N: text prompts x 10 candidates

. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

./tts.sh \
    --stage "${stage}" --stop_stage "${stop_stage}" --nj "${nj}" --seed "${seed}" \
    --data_args "--num_utts ${num_utts} --utts_per_spk ${utts_per_spk}" \
    --split_args "${split_args}" \
    --feats_conf conf/feats.yaml \
    --vocoder "${vocoder}" --max_synth_utts "${max_synth_utts}" --bon_prompts "${bon_prompts}" \
    "$@"
