# Source this file (". tools/activate.sh") to use the parastyle environment;
# it is created on first use.
_ps_tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$_ps_tools/setup.sh" || return 1 2>/dev/null || exit 1
. "$_ps_tools/venv/bin/activate"
export PYTHONIOENCODING=UTF-8 LC_ALL=C HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset _ps_tools
