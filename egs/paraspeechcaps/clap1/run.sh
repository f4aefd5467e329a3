#!/usr/bin/env bash
# ParaSpeechCLAP on ParaSpeechCaps: WavLM-Large + Granite Embedding 278M, paper hyperparameters
# (4 GPUs). variant: intrinsic | situational | combined.
set -euo pipefail

stage=0
stop_stage=100
variant=intrinsic
psc_root=${PSC_ROOT:-}           # local copies of the Hugging Face datasets (local/README.md)
audio_root=${PSC_AUDIO_ROOT:-}   # <audio_root>/<source>/<relative_audio_path>
ngpu=4
train_args=""

passthrough=true . utils/parse_options.sh   # options run.sh does not define go on to the stage script

common=(--split false --feats false --train_set "train_${variant}" --valid_set ""
        --train_config "conf/train_clap_${variant}.yaml" --ngpu "${ngpu}" --train_args "${train_args}")
if [ "${stage}" -le 0 ]; then
    data_args=""   # paths are passed without quoting: they must not contain spaces
    if [ -n "${psc_root}" ]; then data_args+=" --psc_root ${psc_root}"; fi
    if [ -n "${audio_root}" ]; then data_args+=" --audio_root ${audio_root}"; fi
    ./clap.sh "${common[@]}" --stage 0 --stop_stage 0 --data_args "${data_args}"
    stage=1
fi
# every evaluation subset made by stage 0: eval_<variant>_<split> (retrieval and classification_<attribute>)
test_sets=$(cd data && ls -d eval_* 2>/dev/null | grep -v '\.tmp$' | tr '\n' ' ' || true)
if [ "${stop_stage}" -ge 1 ]; then
    ./clap.sh "${common[@]}" --stage "${stage}" --stop_stage "${stop_stage}" --test_sets "${test_sets}" "$@"
fi
