#!/usr/bin/env bash
# Stage 0 of egs/paraspeechcaps/clap1: local parquet copies of the ParaSpeechCaps training sets and
# the ParaSpeechCLAP evaluation sets + the source audio -> Kaldi data dirs under data/.
set -euo pipefail

nj=2                         # unused (kept for the common stage-0 interface)
psc_root=${PSC_ROOT:-}       # directory holding the local dataset copies (see below)
audio_root=${PSC_AUDIO_ROOT:-}   # <audio_root>/<source>/<relative_audio_path>
prep_args=""                 # e.g. "--skip_missing" or "--situational_upsample 8"

. utils/parse_options.sh

usage() {
    cat >&2 <<EOT
$0: ParaSpeechCaps data not found.
Download (with the Hugging Face CLI, on a machine with internet access) these dataset repositories
into one directory and set psc_root (or PSC_ROOT) to it:
    \${psc_root}/paraspeechcaps-intrinsic-train      <- ajd12342/paraspeechcaps-intrinsic-train
    \${psc_root}/paraspeechcaps-situational-train    <- ajd12342/paraspeechcaps-situational-train
    \${psc_root}/paraspeechclap-eval-intrinsic       <- ajd12342/paraspeechclap-eval-intrinsic
    \${psc_root}/paraspeechclap-eval-situational     <- ajd12342/paraspeechclap-eval-situational
    \${psc_root}/paraspeechclap-eval-combined        <- ajd12342/paraspeechclap-eval-combined
  e.g. huggingface-cli download --repo-type dataset ajd12342/paraspeechclap-eval-intrinsic \\
           --local-dir \${psc_root}/paraspeechclap-eval-intrinsic
The audio comes from the source corpora (Expresso, EARS, VoxCeleb, Emilia), arranged as
<audio_root>/<source>/<relative_audio_path>; set audio_root (or PSC_AUDIO_ROOT).
See local/README.md. Then: ./run.sh --psc_root DIR --audio_root DIR
EOT
    exit 1
}

[ -n "${psc_root}" ] && [ -d "${psc_root}" ] || usage
[ -n "${audio_root}" ] && [ -d "${audio_root}" ] || usage

args=()
for pair in intrinsic_train:paraspeechcaps-intrinsic-train situational_train:paraspeechcaps-situational-train \
            eval_intrinsic:paraspeechclap-eval-intrinsic eval_situational:paraspeechclap-eval-situational \
            eval_combined:paraspeechclap-eval-combined; do
    opt=${pair%%:*}; dir=${psc_root}/${pair#*:}
    if [ -d "${dir}" ]; then
        args+=("--${opt}" "${dir}")
    else
        echo "$0: ${dir} not found; ${opt} is skipped" >&2
    fi
done
[ ${#args[@]} -gt 0 ] || usage

# shellcheck disable=SC2086
python local/prepare_paraspeechcaps.py --audio_root "${audio_root}" --out data \
    --class_labels conf/classification_labels.json "${args[@]}" ${prep_args}

# Tag names are single tokens everywhere (utt2tags, data/lang/*tags.txt, tag_paraphrases.json keys):
# whitespace inside a tag -> "_" (prepare_paraspeechcaps.norm_tag); a hand-written
# conf/tag_paraphrases.json gets the same normalisation and is checked against the vocabulary.
if [ -f data/lang/intrinsic_tags.txt ]; then
    if [ -f conf/tag_paraphrases.json ]; then
        python local/make_tag_paraphrases.py --from conf/tag_paraphrases.json \
            data/lang/intrinsic_tags.txt data/lang/tag_paraphrases.json
    else
        python local/make_tag_paraphrases.py data/lang/intrinsic_tags.txt data/lang/tag_paraphrases.json
    fi
fi
