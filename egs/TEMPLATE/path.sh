# Environment of a recipe; sourced as ". ./path.sh" from egs/<corpus>/<task>1/.
# Finds the repository root (three levels up; for a recipe copied elsewhere, where this file's
# symlink points; or $PARASTYLE_ROOT), activates the parastyle environment (tools/activate.sh
# creates it when missing), puts utils/ on PATH and sets the C locale.
if [ -n "${PARASTYLE_ROOT:-}" ]; then
  MAIN_ROOT=$(cd "${PARASTYLE_ROOT}" && pwd)
elif [ -f "${PWD}/../../../tools/activate.sh" ]; then
  MAIN_ROOT=$(cd "${PWD}/../../.." && pwd)
else
  MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
fi
if [ ! -f "${MAIN_ROOT}/tools/activate.sh" ]; then
  echo "path.sh: cannot find the parastyle repository (no ${MAIN_ROOT}/tools/activate.sh); set PARASTYLE_ROOT" >&2
  return 1 2>/dev/null || exit 1
fi
. "${MAIN_ROOT}/tools/activate.sh" || { return 1 2>/dev/null || exit 1; }
export MAIN_ROOT
export PATH="${MAIN_ROOT}/utils:${PATH}"
export LC_ALL=C
export PYTHONUNBUFFERED=1
