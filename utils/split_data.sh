#!/usr/bin/env bash
# Split a data directory into <data>/split<N>/{1..N} by speaker (or split<N>utt with --per-utt).
#   utils/split_data.sh [--per-utt] <data> <num-to-split>
exec python -m parastyle.bin.split_data "$@"
