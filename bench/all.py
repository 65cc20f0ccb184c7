"""`make bench`: every benchmark in turn, each printing its own table (loopback only, bounded)."""

from __future__ import annotations

import os
import subprocess
import sys

RUNS = [
    ["bench.handoff"],
    ["bench.ingest"],
    ["bench.e2e", "--conversations", "600", "--processes", "4"],
    ["bench.e2e", "--conversations", "600", "--processes", "4", "--no-eager-send"],
    ["bench.outbound", "--send-concurrency", "16,4"],
    ["bench.send_limit"],
    ["bench.ai_budgets", "--calls", "20"],
    ["bench.telemetry_overhead"],
    ["bench.reports"],
    ["bench.evidence"],
    ["bench.retention"],
]


def main() -> int:
    env = dict(os.environ)  # default settings, LOG_LEVEL included: what a user gets
    failed = 0
    for args in RUNS:
        print(f"\n=== python -m {' '.join(args)}", flush=True)
        failed += subprocess.run([sys.executable, "-m", *args], env=env, check=False).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
