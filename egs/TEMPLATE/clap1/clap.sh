#!/usr/bin/env bash
# ParaSpeechCLAP stage script (speech/caption dual encoder), shared by every egs/<corpus>/clap1 recipe.
# Called by run.sh; every variable below is overridable as --name value.
#
#   0 data preparation        local/data.sh (the only corpus-specific step)
#   1 split                   data/all -> train/dev/test, speaker-independent (skipped when split=false)
#   2 features                feats.scp for every set (skipped when feats=false: on-the-fly frontend)
#   3 CMVN + checks           validate every data dir; global CMVN of the training set (feats=true)
#   4 training                python -m parastyle.bin.train (torchrun when ngpu > 1)
#   5 evaluation              caption retrieval + zero-shot classification per test set -> RESULTS.md
#   6 best-of-N               rank candidate wavs by cosine to a style prompt (when bon_candidates is set)
set -euo pipefail

. ./path.sh
. ./cmd.sh

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

stage=0
stop_stage=100
nj=2
data_args=""                 # extra arguments of local/data.sh
split=true                   # stage 1: split data/all into train/dev/test
split_args="--dev 0.15 --test 0.15 --seed 0"
train_set=train
valid_set=dev
test_sets="test"
lang_dir=data/lang
feats=false                  # true: pre-extracted features (stage 2-3); false: frontend in the train config
feats_conf=conf/feats.yaml
train_config=conf/train_clap.yaml
tag=""                       # exp name suffix (default: the config's name)
train_args=""                # extra --section.key value overrides for the trainer
ngpu=${ngpu:-0}              # >1: torchrun --nproc_per_node ngpu (default from cmd.sh)
eval_template="A person is speaking in a {label} style."
eval_label_names=""          # JSON {factor: {label: words}} used in the classification prompts
eval_args=""
bon_prompt="A person is speaking in a happy style."
bon_candidates=""            # directory of .wav files or wav.scp (stage 6)

. utils/parse_options.sh

if [ -z "${tag}" ]; then tag=$(basename "${train_config}" .yaml); fi
expdir=exp/${tag}

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    log "Stage 0: data preparation (local/data.sh)"
    # shellcheck disable=SC2086
    local/data.sh --nj "${nj}" ${data_args}
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ] && [ "${split}" = true ]; then
    log "Stage 1: speaker-independent split of data/all into ${train_set}/${valid_set}/${test_sets%% *}"
    # shellcheck disable=SC2086
    python -m parastyle.bin.split_train_dev_test ${split_args} --report data/split_report.txt \
        data/all "data/${train_set}" "data/${valid_set}" "data/${test_sets%% *}"
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ] && [ "${feats}" = true ]; then
    log "Stage 2: feature extraction (${feats_conf})"
    for s in ${train_set} ${valid_set} ${test_sets}; do
        python -m parastyle.bin.extract_feats --data "data/${s}" --conf "${feats_conf}" --dump "dump/${s}" --nj "${nj}"
    done
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "Stage 3: data checks (and CMVN when feats=true)"
    check_args="--no-feats"
    if [ "${feats}" = true ]; then check_args=""; fi
    for s in ${train_set} ${valid_set} ${test_sets}; do
        # shellcheck disable=SC2086
        python -m parastyle.bin.validate_data_dir ${check_args} --no-text --lang_dir "${lang_dir}" "data/${s}"
    done
    if [ "${feats}" = true ]; then
        python -m parastyle.bin.compute_cmvn --data "data/${train_set}"
    fi
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "Stage 4: training ${expdir} (${train_config})"
    launcher="python"
    if [ "${ngpu}" -gt 1 ]; then launcher="torchrun --nproc_per_node ${ngpu}"; fi
    valid_opt=""
    if [ -n "${valid_set}" ]; then valid_opt="--valid_data data/${valid_set}"; fi
    # shellcheck disable=SC2086
    ${launcher} -m parastyle.bin.train --config "${train_config}" --train_data "data/${train_set}" \
        ${valid_opt} --lang_dir "${lang_dir}" --exp "${expdir}" ${train_args}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "Stage 5: retrieval + zero-shot classification on: ${test_sets}"
    if [ -n "${eval_label_names}" ]; then eval_args="--label_names ${eval_label_names} ${eval_args}"; fi
    for s in ${test_sets}; do
        # shellcheck disable=SC2086
        python -m parastyle.bin.eval_clap --exp "${expdir}" --data "data/${s}" --lang_dir "${lang_dir}" \
            --template "${eval_template}" --results_md RESULTS.md ${eval_args}
    done
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ] && [ -n "${bon_candidates}" ]; then
    log "Stage 6: best-of-N ranking of ${bon_candidates} for prompt: ${bon_prompt}"
    python -m parastyle.bin.best_of_n --exp "${expdir}" --prompt "${bon_prompt}" \
        --candidates "${bon_candidates}" --out "${expdir}/best_of_n/ranking.txt"
    head -n 3 "${expdir}/best_of_n/ranking.txt"
fi

log "Finished stages ${stage}-${stop_stage} of ${expdir}"
