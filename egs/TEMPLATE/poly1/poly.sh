#!/usr/bin/env bash
# PolySpeech (one decoder-only LM for ASR, TTS, language ID and gender ID over semantic speech
# representations), shared by every egs/<corpus>/poly1 recipe. Called by run.sh; every variable below
# is overridable as --name value. A stage's outputs are written under a temporary name and renamed.
#
#   0 data preparation       local/data.sh -> data/all + ${lang_dir} (or the sets directly)
#   1 split                  speaker-independent train/dev/test
#   2 features               log-mel (feats_conf) of every set, CMVN of the training set
#   3 units                  ${lang_dir}/tokens.txt (characters: CTC judge / encoder), ${lang_dir}/text_units.model
#                            (sentencepiece text units of the LM), data checks
#   4 CTC recogniser         exp/${ctc_tag}: the ASR judge of the TTS task and (without ssl_path) the semantic encoder
#   5 semantic features      ${sem}/<set>: CTC hidden layer or SSL layer ${ssl_layer}; speaker embeddings (resemblyzer)
#   6 speech tokenizers      SSET (exp/${sset_tag}) and k-means (exp/kmeans) on ${sem}/${train_set};
#                            ${sem}/<set>/{sset,kmeans}/utt2tokens; reconstruction on ${test_set}
#   7 token decoders         tokens + speaker embedding -> log-mel, one per tokenizer (exp/tokdec_<tokens>)
#   8 LMs                    exp/poly_<name> for every name of ${lm_exps} (multitask and single-task configs)
#   9 scoring                every LM on ${test_set} (TTS through the token decoder + vocoder, ASR judge, SECS);
#                            tables in ${results_md}
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0"):${BASH_LINENO[0]}) $*" >&2; }

stage=0
stop_stage=100
nj=2
seed=0
data_args=""
split=true
split_args="--dev 0.1 --test 0.15"
train_set=train
valid_set=dev
test_set=test
lang_dir=data/lang
feats_conf=conf/feats.yaml     # log-mel: input of the CTC recogniser, target of the token decoder, vocoder input
dumpdir=dump
text_units=200                 # sentencepiece vocabulary of the LM text units
text_unit_type=unigram
sem=data_sem                   # semantic data dirs
ssl_path=""                    # SSL model (torchaudio state dict / HF dir): semantic features = its layer ${ssl_layer}
ssl_arch=""
ssl_layer=9
ctc_config=conf/ctc_asr.yaml
ctc_tag=ctc_asr
ctc_args=""
sset_config=conf/sset.yaml
sset_tag=sset
sset_args=""
kmeans_k=256
tokdec_config=conf/token_decoder.yaml
tokdec_args=""
tokdec_upsample_sset=4         # mel frames per SSET token (SSET stride x semantic frame subsampling)
tokdec_upsample_kmeans=2       # mel frames per k-means token (one per semantic frame)
lm_config=conf/lm.yaml
lm_exps="multi asr tts lid gid asr_tokens tts_kmeans"
lm_args=""                     # extra overrides of every LM (the per-exp overrides of lm_overrides come after)
lm_single_steps=${lm_single_steps:-}   # train.max_steps of the single-task LMs: "" = the config's (as the multitask
                               # LM), N = every one, or per task "asr=400 tts=300 lid=150 gid=150" (asr_tokens
                               # takes asr's, tts_kmeans tts's; a task not named keeps the config's)
vocoder=griffin_lim            # or a trained hifigan exp dir
tts_max_utts=40
eval_args=""
device=cpu
results_md=RESULTS.md

. utils/parse_options.sh
. ./path.sh
if [ -f ./cmd.sh ]; then . ./cmd.sh; fi

all_sets="${train_set} ${valid_set} ${test_set}"

# the config overrides of an LM exp name
lm_overrides() {
    local st single="--data.sampler.weights null"   # a single-task LM drops the multitask task weights
    case "$1" in
        multi)      echo "" ;;
        asr|tts|lid|gid) st=$(lm_steps_single "$1") || return 1; echo "${single} --data.lm.tasks [$1] ${st}" ;;
        asr_tokens) st=$(lm_steps_single asr) || return 1; echo "${single} --data.lm.tasks [asr] --data.lm.speech_input tokens ${st}" ;;
        tts_kmeans) st=$(lm_steps_single tts) || return 1
                    echo "${single} --data.lm.tasks [tts] --data.lm.speech_tokens kmeans --model.num_speech_tokens ${kmeans_k} ${st}" ;;
        multi_kmeans) echo "--data.lm.speech_tokens kmeans --model.num_speech_tokens ${kmeans_k}" ;;
        *) echo "unknown LM exp name '$1' (multi asr tts lid gid asr_tokens tts_kmeans multi_kmeans)" >&2; return 1 ;;
    esac
}
# --train.max_steps of the single-task LM of task $1 from ${lm_single_steps} (nothing: the config's)
lm_steps_single() {
    local spec=${lm_single_steps:-} item n=""
    [ -n "${spec}" ] || return 0
    if [[ "${spec}" =~ ^[0-9]+$ ]]; then
        n=${spec}
    else
        for item in ${spec}; do
            if ! [[ "${item}" =~ ^(asr|tts|lid|gid)=[0-9]+$ ]]; then
                echo "lm_single_steps: '${item}' is not <task>=<steps> (tasks asr tts lid gid) in '${spec}'" >&2
                return 1
            fi
            [ "${item%%=*}" = "$1" ] && n=${item#*=}
        done
    fi
    [ -z "${n}" ] || echo "--train.max_steps ${n}"
}

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
    log "stage 0: data preparation (local/data.sh)"
    # shellcheck disable=SC2086
    local/data.sh --nj "${nj}" --seed "${seed}" ${data_args}
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ] && ${split}; then
    log "stage 1: speaker-independent split of data/all into ${all_sets}"
    tmp=data/.split.tmp
    rm -rf "${tmp}"
    # shellcheck disable=SC2086
    python -m parastyle.bin.split_train_dev_test --seed "${seed}" ${split_args} --factors language,gender \
        --report "${tmp}/split_report.txt" data/all "${tmp}/${train_set}" "${tmp}/${valid_set}" "${tmp}/${test_set}"
    for s in ${all_sets}; do rm -rf "data/${s}"; mv "${tmp}/${s}" "data/${s}"; done
    mv "${tmp}/split_report.txt" data/split_report.txt
    rmdir "${tmp}"
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
    log "stage 2: log-mel features (${feats_conf}) of ${all_sets}; CMVN of ${train_set}"
    for s in ${all_sets}; do
        python -m parastyle.bin.extract_feats --data "data/${s}" --conf "${feats_conf}" --dump "${dumpdir}/${s}" --nj "${nj}"
    done
    python -m parastyle.bin.compute_cmvn --data "data/${train_set}"
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
    log "stage 3: characters (${lang_dir}/tokens.txt) and ${text_units} sentencepiece text units from data/${train_set}/text"
    python -m parastyle.bin.make_tokens --text "data/${train_set}/text" --lang_dir "${lang_dir}" --token_type char
    tmp=${lang_dir}/.text_units.tmp
    rm -rf "${tmp}"
    python -m parastyle.bin.make_tokens --text "data/${train_set}/text" --lang_dir "${tmp}" --token_type bpe \
        --bpe_type "${text_unit_type}" --vocab_size "${text_units}" --model_prefix text_units
    mv "${tmp}/text_units.model" "${lang_dir}/text_units.model"
    mv "${tmp}/text_units.vocab" "${lang_dir}/text_units.vocab"
    rm -rf "${tmp}"
    for s in ${all_sets}; do
        python -m parastyle.bin.validate_data_dir --lang_dir "${lang_dir}" "data/${s}"
    done
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
    log "stage 4: CTC recogniser ${ctc_config} on ${train_set} -> exp/${ctc_tag}"
    # shellcheck disable=SC2086
    python -m parastyle.bin.train --config "${ctc_config}" --train_data "data/${train_set}" \
        --valid_data "data/${valid_set}" --lang_dir "${lang_dir}" --exp "exp/${ctc_tag}" \
        --model.token_list "${lang_dir}/tokens.txt" ${ctc_args}
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
    for s in ${all_sets}; do
        tmp=${sem}/.${s}.tmp
        rm -rf "${tmp}"
        if [ -n "${ssl_path}" ]; then
            log "stage 5: ${sem}/${s}: SSL layer ${ssl_layer} of ${ssl_path}; speaker embeddings"
            python -m parastyle.bin.dump_semantic --data "data/${s}" --out "${tmp}" --copy_only --spk_emb \
                --ark_dir "${dumpdir}/sem_${s}"
            python -m parastyle.bin.dump_ssl_layers --data "${tmp}" --ssl_path "${ssl_path}" \
                ${ssl_arch:+--arch "${ssl_arch}"} --dump "${dumpdir}/sem_${s}" --layers "${ssl_layer}"
        else
            log "stage 5: ${sem}/${s}: hidden layer of exp/${ctc_tag}; speaker embeddings"
            python -m parastyle.bin.dump_semantic --data "data/${s}" --out "${tmp}" --ctc_exp "exp/${ctc_tag}" --spk_emb \
                --ark_dir "${dumpdir}/sem_${s}"
        fi
        rm -rf "${sem}/${s}"
        mv "${tmp}" "${sem}/${s}"
    done
    log "stage 5: CMVN of ${sem}/${train_set} (the LM's semantic input, data.cmvn auto)"
    python -m parastyle.bin.compute_cmvn --data "${sem}/${train_set}"
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
    # shellcheck disable=SC2086
    log "stage 6: SSET ${sset_config} -> exp/${sset_tag}; k-means (${kmeans_k}); tokens of ${all_sets}"
    python -m parastyle.bin.train --config "${sset_config}" --train_data "${sem}/${train_set}" \
        --valid_data "${sem}/${valid_set}" --lang_dir "${lang_dir}" --exp "exp/${sset_tag}" ${sset_args}
    python -m parastyle.bin.make_tokens --data "${sem}/${train_set}" --kmeans exp/kmeans/kmeans.npz \
        --kmeans_fit "${kmeans_k}" --seed "${seed}"
    for s in ${all_sets}; do
        python -m parastyle.bin.make_tokens --data "${sem}/${s}" --sset "exp/${sset_tag}" --name sset
        [ "${s}" = "${train_set}" ] || python -m parastyle.bin.make_tokens --data "${sem}/${s}" --kmeans exp/kmeans/kmeans.npz
    done
    python -m parastyle.bin.eval_poly --data "${sem}/${test_set}" --tokenizer_recon sset --sset "exp/${sset_tag}" \
        --out "exp/${sset_tag}/recon_${test_set}.json"
    python -m parastyle.bin.eval_poly --data "${sem}/${test_set}" --tokenizer_recon kmeans \
        --kmeans exp/kmeans/kmeans.npz --out "exp/kmeans/recon_${test_set}.json"
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
    sset_vocab=$(python -c "import yaml;print(yaml.safe_load(open('${sem}/${train_set}/sset/tokens.yaml'))['vocab_size'])")
    for tok in sset kmeans; do
        if [ ${tok} = sset ]; then n=${sset_vocab}; up=${tokdec_upsample_sset}; else n=${kmeans_k}; up=${tokdec_upsample_kmeans}; fi
        log "stage 7: token decoder (${tok}: ${n} tokens, ${up} mel frames each) -> exp/tokdec_${tok}"
        # shellcheck disable=SC2086
        python -m parastyle.bin.train --config "${tokdec_config}" --train_data "${sem}/${train_set}" \
            --valid_data "${sem}/${valid_set}" --lang_dir "${lang_dir}" --exp "exp/tokdec_${tok}" \
            --data.token_mel.tokens "${tok}" --model.num_tokens "${n}" --model.upsample "${up}" ${tokdec_args}
    done
fi

if [ ${stage} -le 8 ] && [ ${stop_stage} -ge 8 ]; then
    sset_vocab=$(python -c "import yaml;print(yaml.safe_load(open('${sem}/${train_set}/sset/tokens.yaml'))['vocab_size'])")
    for name in ${lm_exps}; do
        ov=$(lm_overrides "${name}") || exit 1
        log "stage 8: LM exp/poly_${name} (${lm_config} ${ov})"
        # shellcheck disable=SC2086
        python -m parastyle.bin.train --config "${lm_config}" --train_data "${sem}/${train_set}" \
            --valid_data "${sem}/${valid_set}" --lang_dir "${lang_dir}" --exp "exp/poly_${name}" \
            --model.text_units "${lang_dir}/text_units.model" --model.num_speech_tokens "${sset_vocab}" \
            ${lm_args} ${ov}
    done
fi

if [ ${stage} -le 9 ] && [ ${stop_stage} -ge 9 ]; then
    for name in ${lm_exps}; do
        tok=sset
        case "${name}" in *kmeans*) tok=kmeans;; esac
        log "stage 9: scoring exp/poly_${name} on ${sem}/${test_set}"
        # shellcheck disable=SC2086
        python -m parastyle.bin.eval_poly --exp "exp/poly_${name}" --data "${sem}/${test_set}" \
            --token_decoder "exp/tokdec_${tok}" --judge "exp/${ctc_tag}" --vocoder "${vocoder}" \
            --mel_conf "${feats_conf}" --tts_max_utts "${tts_max_utts}" --device "${device}" ${eval_args}
    done
    python -m parastyle.bin.eval_poly --tables "${results_md}" --exp_glob "exp/poly_*/decode_${test_set}/results.json" \
        --recon "exp/${sset_tag}/recon_${test_set}.json" "exp/kmeans/recon_${test_set}.json"
fi
log "done"
