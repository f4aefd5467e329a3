#!/usr/bin/env bash
# Check a data directory and print every problem with its file and line.
#   utils/validate_data_dir.sh [--no-feats] [--no-text] [--no-wav] [--no-spk-sort] [--lang-dir data/lang] <data-dir>
# Exit status 1 when a problem is found. (python -m parastyle.bin.validate_data_dir)
exec python -m parastyle.bin.validate_data_dir "$@"
