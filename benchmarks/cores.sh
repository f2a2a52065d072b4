#!/usr/bin/env bash
# The many-core check, for a machine with more cores than a laptop's (16 and up):
#
#     bash benchmarks/cores.sh LOGDIR [THREADS]      # THREADS default: 1,4,<cores>
#
# 1. python benchmarks/run.py --threads THREADS at 1024 a side ('auto'): each case against
#    every peer installed, and whether time grows with threads.
# 2. The size sweep (benchmarks/sizes.py), float32, on one thread and on all cores: the cost
#    per output cell from 1024² to 4096² (8192² for 5x5) and the speed-up of all cores.
# 3. The test suite, one process per test module side by side (the modules with
#    CONVOLUTION_THREADS set to the cores, so every path's threads really run at once).
#
# Each step has a time limit of its own, so one slow step leaves the others their time;
# everything goes to LOGDIR/cores.log (a step's last lines say whether it held).
set -uo pipefail
cd "$(dirname "$0")/.."
logs="${1:?usage: bash benchmarks/cores.sh LOGDIR [THREADS]}"
cores="$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))')"
threads="${2:-1,4,$cores}"
mkdir -p "$logs"
log="$logs/cores.log"
export PYTHONUNBUFFERED=1
{
    echo "# $(date -u) on $(uname -m), $cores cores"
    python3 -c 'import sys, numpy, scipy; print(sys.version.split()[0], "numpy", numpy.__version__, "scipy", scipy.__version__)'
    python3 -c 'import threadpoolctl, pprint; pprint.pprint([(i["internal_api"], i.get("version"), i["num_threads"]) for i in threadpoolctl.threadpool_info()])' 2>/dev/null

    echo "## 1. python benchmarks/run.py --threads $threads --sizes 1024 --repeats 3 --no-paths"
    start=$SECONDS
    timeout 150 python3 benchmarks/run.py --threads "$threads" --sizes 1024 --repeats 3 --no-paths
    echo "run.py: rc=$? $((SECONDS - start)) s"

    echo "## 2. the size sweep, float32, 1 and $cores threads"
    start=$SECONDS
    timeout 100 python3 -c "
import sys; sys.path.insert(0, 'benchmarks')
import numpy as np, sizes
sizes.sweep([1, $cores], 3, dtypes=(np.float32,))
"
    echo "sizes.py: rc=$? $((SECONDS - start)) s"
    echo "## 3. the test suite, module by module, side by side (CONVOLUTION_THREADS=$cores)"
    tmp="$(mktemp -d)"
    start=$SECONDS
    for module in testsuite/test_*.py; do
        name="$(basename "$module" .py)"
        ( CONVOLUTION_THREADS="$cores" timeout 200 python3 -m unittest "testsuite.$name" \
              >"$tmp/$name.log" 2>&1; echo "rc=$?" >>"$tmp/$name.log" ) &
    done
    wait
    for f in "$tmp"/*.log; do
        echo "### $(basename "$f" .log): $(grep -E '^(Ran|OK|FAILED)' "$f" | tr '\n' ' ') $(tail -1 "$f")"
        grep -q '^rc=0$' "$f" || cat "$f"
    done
    echo "suite: $((SECONDS - start)) s"

} 2>&1 | tee "$log"
