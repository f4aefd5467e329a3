#!/usr/bin/env bash
# Combine data directories (unique utterance ids; factor files of some inputs kept).
#   utils/combine_data.sh [--lang-dir data/lang] <dest> <src1> <src2> ...
exec python -m parastyle.bin.combine_data "$@"
