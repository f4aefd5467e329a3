#!/usr/bin/env bash
# Sourced by run.sh after its variable defaults: turns "--name value" arguments into
# name=value for every variable already defined, leaving the remaining positional
# arguments in "$@". "--name=value" works too; dashes in names map to underscores.
# An unknown option is an error that lists the options the script has.
#
#   stage=0; num_utts=400
#   . utils/parse_options.sh   # ./run.sh --stage 2 --num-utts 600
#
# A recipe's run.sh that hands the rest of its options to a stage script sources it as
#   passthrough=true . utils/parse_options.sh
# then options it does not define are kept, in order, in "$@" for the stage script (which parses
# them with this file again and rejects those it does not know either).
__ps_prog=$(basename "$0")
__ps_rest=()
while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      echo "usage: $__ps_prog [--<variable> <value>] ...; variables:" >&2
      grep -E '^[a-zA-Z_][a-zA-Z0-9_]*=' "$0" | sed 's/^/  /' >&2
      [ "${passthrough:-false}" = true ] && echo "other options go on to the stage script; its --help lists them" >&2
      exit 0 ;;
    --*=*)
      __ps_name=${1%%=*}; __ps_name=${__ps_name#--}; __ps_name=${__ps_name//-/_}
      __ps_value=${1#*=}; shift ;;
    --*)
      __ps_name=${1#--}; __ps_name=${__ps_name//-/_}
      if [ $# -lt 2 ]; then echo "$__ps_prog: option $1 needs a value" >&2; exit 1; fi
      __ps_value=$2; shift 2 ;;
    *) break ;;
  esac
  if ! declare -p "$__ps_name" >/dev/null 2>&1 || [ "$__ps_name" = passthrough ]; then
    if [ "${passthrough:-false}" = true ]; then __ps_rest+=("--$__ps_name" "$__ps_value"); continue; fi
    echo "$__ps_prog: unknown option --$__ps_name (run with --help for the list)" >&2; exit 1
  fi
  # Keep booleans boolean: "--flag true/false" only for variables that are true/false.
  __ps_old=${!__ps_name}
  if [[ "$__ps_old" == true || "$__ps_old" == false ]] && [[ "$__ps_value" != true && "$__ps_value" != false ]]; then
    echo "$__ps_prog: option --$__ps_name expects true or false, got '$__ps_value'" >&2; exit 1
  fi
  printf -v "$__ps_name" '%s' "$__ps_value"
done
set -- ${__ps_rest[@]+"${__ps_rest[@]}"} "$@"
unset __ps_name __ps_value __ps_old __ps_prog __ps_rest
true
