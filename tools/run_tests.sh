#!/usr/bin/env bash
# The test command of the README: builds the environment when missing, then runs pytest.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/tools/activate.sh" || exit 1
cd "$root"
python -m pytest -q -p no:cacheprovider tests "$@"
rc=$?
# pytest exits 5 when it collected no test: that is a failure of the suite here too.
exit $rc
