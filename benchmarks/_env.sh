# Sourced by the benchmark scripts (methods.sh; profile_vs_tasks.sh can use the same): the
# repository root, the Python to use, and the machine's name and description for the results.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# PYTHON: the interpreter; default the checkout's .venv, else python from PATH
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python

# machine_slug [DEVICE]: the GPU (DEVICE cuda[:N]) or CPU model name in lower case, runs of
# other characters as '-' (e.g. cpu-intel-r-xeon-r-...): the results folder's machine part.
machine_slug() {
  "$PY" - "${1:-cpu}" <<'EOF'
import re, sys
dev = sys.argv[1]
if dev.startswith('cuda'):
    import torch
    name = torch.cuda.get_device_name(torch.device(dev).index or 0)
else:
    name = 'cpu'
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.lower().startswith('model name'):
                name = 'cpu-' + line.split(':', 1)[1].strip()
                break
print(re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-'))
EOF
}

# write_machine_json DEVICE FILE: mtdense.analysis.machine_info(DEVICE) as JSON in FILE
write_machine_json() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
import mtdense  # noqa: F401
from mtdense.analysis import machine_info
json.dump(machine_info(sys.argv[1]), open(sys.argv[2], 'w'), indent=1)
EOF
}
