#!/usr/bin/env bash
# Style-controlled TTS stage script, shared by every egs/<corpus>/tts1 recipe. Called by run.sh;
# every variable below is overridable as --name value. A stage writes under a temporary name (or
# writes its completion marker last), so a killed stage is redone and never mistaken as complete.
#
#   0 data preparation   local/data.sh -> data/all + ${lang_dir} (the only corpus-specific step)
#   1 split              data/all -> ${train_set}/${valid_set}/${test_set}, speaker-independent
#   2 phonemes           text -> <set>/phones (espeak-ng), ${lang_dir}/phones.txt; tokens.txt (ASR judge)
#   3 features           log-mel (feats.scp, no CMVN in it), F0 + energy (prosody.scp); CMVN of ${train_set}
#   4 judges             independent style judge (multi-task CE) and CTC ASR judge on ground truth
#   5 style models       ParaMETA exp (conditions the TTS), CLAP exp (best-of-N ranker);
#                        style vectors of every set from the ParaMETA exp (speech prompt = own recording)
#   6 acoustic model     fastspeech_style on ${train_set} with the style vectors
#   7 vocoder            HiFi-GAN on ${train_set} (skipped when vocoder=griffin_lim)
#   8 synthesis          ${test_set}: speech / text prompts, manipulation of every factor, copy synthesis,
#                        best-of-N candidates
#   9 evaluation         eval_tts on every synthesis dir; best-of-N with the CLAP and ParaMETA rankers
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

stage=0
stop_stage=100
nj=2
seed=0
data_args=""                 # extra arguments of local/data.sh
split_args="--dev 0.1 --test 0.15"
train_set=train
valid_set=dev
test_set=test
lang_dir=data/lang
feats_conf=conf/feats.yaml
dumpdir=dump
train_ngpu=""                # GPUs for training (>1: torchrun DDP); empty = ${ngpu} of cmd.sh
train_nproc=1                # CPU training (no GPU): processes (>1: torchrun DDP over gloo, the cores shared out
                             # among them, each rank a slice of the same global batch)
judge_ce_config=conf/train_judge_ce.yaml
judge_asr_config=conf/train_judge_asr.yaml
judge_args=""                # extra overrides of both judges' training, e.g. "--train.max_steps 300"
style_config=conf/train_parameta.yaml
clap_config=conf/train_clap.yaml
style_args=""                # extra overrides of the ParaMETA and CLAP training
style_mode=subspaces         # ParaMETA style vector: subspaces (speech, text and manipulated prompts) | meta
tts_config=conf/train_tts.yaml
tts_args=""                  # extra overrides of the acoustic model's training, e.g. "--train.max_steps 500"
vocoder_config=conf/train_vocoder.yaml
vocoder_args=""              # extra overrides of the vocoder training
vocoder=neural               # neural (train ${vocoder_config}) | griffin_lim
manipulate_factors="emotion gender age language"
max_synth_utts=""            # synthesise only the first N test utterances per prompt type (empty = all)
bon_prompts=40               # best-of-N: test prompts (text prompts), each with ${bon_candidates} candidates
bon_candidates=10
synth_args=""                # extra arguments of parastyle.bin.synthesize
results_md=RESULTS.md

. utils/parse_options.sh
. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi

train_ngpu=${train_ngpu:-${ngpu:-0}}
all_sets="${train_set} ${valid_set} ${test_set}"
launcher="python -m parastyle.bin.train"
if [ "${train_ngpu}" -gt 1 ]; then
    launcher="torchrun --standalone --nproc_per_node ${train_ngpu} -m parastyle.bin.train"
elif [ "${train_ngpu}" -eq 0 ] && [ "${train_nproc}" -gt 1 ]; then
    launcher="torchrun --standalone --nproc_per_node ${train_nproc} -m parastyle.bin.train"
fi
device=cpu
if [ "${train_ngpu}" -gt 0 ]; then device=cuda; fi
train() {  # train <config> <exp> [overrides...]: resumes; a finished exp (done) is left as it is
    local config=$1 exp=$2
    shift 2
    # shellcheck disable=SC2086
    ${launcher} --config "${config}" --train_data "data/${train_set}" --valid_data "data/${valid_set}" \
        --lang_dir "${lang_dir}" --exp "${exp}" "$@"
}
vocoder_spec=griffin_lim
if [ "${vocoder}" = neural ]; then vocoder_spec=exp/vocoder; fi

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    log "stage 0: data preparation (local/data.sh) -> data/all, ${lang_dir}"
    # shellcheck disable=SC2086
    local/data.sh --nj "${nj}" --seed "${seed}" ${data_args}
    python -m parastyle.bin.validate_data_dir --no-feats --lang_dir "${lang_dir}" data/all
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
    log "stage 1: speaker-independent split of data/all into ${train_set}/${valid_set}/${test_set}"
    tmp=data/.split.tmp
    rm -rf "${tmp}"
    # shellcheck disable=SC2086
    python -m parastyle.bin.split_train_dev_test --seed "${seed}" ${split_args} \
        --report "${tmp}/split_report.txt" data/all "${tmp}/${train_set}" "${tmp}/${valid_set}" "${tmp}/${test_set}"
    for s in ${all_sets}; do
        rm -rf "data/${s}"
        mv "${tmp}/${s}" "data/${s}"
    done
    mv "${tmp}/split_report.txt" data/split_report.txt
    rmdir "${tmp}"
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "stage 2: phonemes of ${all_sets} -> ${lang_dir}/phones.txt; characters -> ${lang_dir}/tokens.txt"
    # shellcheck disable=SC2086
    python -m parastyle.bin.make_phones --lang_dir "${lang_dir}" --build_vocab $(for s in ${all_sets}; do echo "data/${s}"; done)
    python -m parastyle.bin.make_tokens --text "data/${train_set}/text" --lang_dir "${lang_dir}"
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "stage 3: log-mel (${feats_conf}), F0 + energy and CMVN of: ${all_sets}"
    for s in ${all_sets}; do
        python -m parastyle.bin.extract_feats --data "data/${s}" --conf "${feats_conf}" --dump "${dumpdir}/${s}" --nj "${nj}"
        python -m parastyle.bin.extract_prosody --data "data/${s}" --dump "${dumpdir}/${s}" --nj "${nj}"
    done
    python -m parastyle.bin.compute_cmvn --data "data/${train_set}"
    for s in ${all_sets}; do
        python -m parastyle.bin.validate_data_dir --lang_dir "${lang_dir}" "data/${s}"
    done
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "stage 4: judges on ground truth: ${judge_ce_config} -> exp/judge_ce, ${judge_asr_config} -> exp/judge_asr"
    # shellcheck disable=SC2086
    train "${judge_ce_config}" exp/judge_ce ${judge_args}
    # shellcheck disable=SC2086
    train "${judge_asr_config}" exp/judge_asr --model.token_list "${lang_dir}/tokens.txt" ${judge_args}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    log "stage 5: style models ${style_config} -> exp/parameta, ${clap_config} -> exp/clap; style vectors (${style_mode})"
    # shellcheck disable=SC2086
    train "${style_config}" exp/parameta ${style_args}
    # shellcheck disable=SC2086
    train "${clap_config}" exp/clap ${style_args}
    args=""
    for s in ${all_sets}; do args="${args} --data data/${s} --dump ${dumpdir}/${s}"; done
    # shellcheck disable=SC2086
    python -m parastyle.bin.make_style_vectors --style_exp exp/parameta --mode "${style_mode}" --device "${device}" ${args}
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    log "stage 6: acoustic model ${tts_config} -> exp/tts (style vectors of exp/parameta, ${style_mode})"
    style_dim=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["dim"])' "data/${train_set}/style_conf.yaml")
    # shellcheck disable=SC2086
    train "${tts_config}" exp/tts --data.tts.phone_vocab "${lang_dir}/phones.txt" \
        --data.tts.style "{type: vector, scp: style.scp, exp: exp/parameta, mode: ${style_mode}}" \
        --model.style "{type: vector, dim: ${style_dim}}" ${tts_args}
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    if [ "${vocoder}" = neural ]; then
        log "stage 7: vocoder ${vocoder_config} -> exp/vocoder"
        # shellcheck disable=SC2086
        train "${vocoder_config}" exp/vocoder ${vocoder_args}
    else
        log "stage 7: vocoder=${vocoder}: nothing to train"
    fi
fi

synth() {  # synth <name> [synthesize args...] -> exp/tts/synth_<name>
    local name=$1
    shift
    local lim=""
    if [ -n "${max_synth_utts}" ]; then lim="--max_utts ${max_synth_utts}"; fi
    # shellcheck disable=SC2086
    python -m parastyle.bin.synthesize --tts_exp exp/tts --vocoder "${vocoder_spec}" --seed "${seed}" \
        --device "${device}" --data "data/${test_set}" --out "exp/tts/synth_${name}" ${lim} ${synth_args} "$@"
}

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    log "stage 8: synthesis of ${test_set} with ${vocoder_spec}: speech, text, manipulated (${manipulate_factors}), copy, best-of-N"
    synth speech --prompt speech
    synth text --prompt text
    for f in ${manipulate_factors}; do
        synth "manip_${f}" --prompt manipulated --manipulate "${f}=*"
    done
    synth copy --prompt speech --copy_synthesis
    # shellcheck disable=SC2086
    python -m parastyle.bin.synthesize --tts_exp exp/tts --vocoder "${vocoder_spec}" --seed "${seed}" --device "${device}" \
        --data "data/${test_set}" --prompt text --max_utts "${bon_prompts}" --num_candidates "${bon_candidates}" \
        --out exp/tts/synth_bon ${synth_args}
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    log "stage 9: evaluation of exp/tts/synth_* by exp/judge_ce and exp/judge_asr -> ${results_md}"
    for name in speech text $(for f in ${manipulate_factors}; do echo "manip_${f}"; done) copy; do
        python -m parastyle.bin.eval_tts --synth_dir "exp/tts/synth_${name}" --ref_data "data/${test_set}" \
            --lang_dir "${lang_dir}" --judge exp/judge_ce --asr_judge exp/judge_asr --tag "${name}" \
            --results_md "${results_md}" --device "${device}"
    done
    python -m parastyle.bin.eval_tts --best_of_n --synth_dir exp/tts/synth_bon --ref_data "data/${test_set}" \
        --judge exp/judge_ce --asr_judge exp/judge_asr --ranker clap=exp/clap --ranker parameta=exp/parameta \
        --results_md "${results_md}" --device "${device}"
fi

log "finished stages ${stage}-${stop_stage}"
