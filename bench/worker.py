"""`python -m bench.worker WORKLOAD ARGS_JSON`: run one workload, print its result as JSON."""

from __future__ import annotations

import sys

import msgspec

from bench import scale_workloads, workloads
from bench.common import max_rss_kib

WORKLOADS = workloads.WORKLOADS | scale_workloads.WORKLOADS


def main() -> None:
    name, args = sys.argv[1], msgspec.json.decode(sys.argv[2])
    result = WORKLOADS[name](args)
    result["max_rss_kib"] = max_rss_kib()
    sys.stdout.write("\n" + msgspec.json.encode(result).decode() + "\n")


if __name__ == "__main__":
    main()
