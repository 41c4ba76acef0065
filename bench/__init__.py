"""OncoLedger benchmarks (SPEC §9): `python -m bench [--quick] [--out BENCHMARKS.md]`.

Each workload runs in a subprocess of its own (peak memory is that process's max RSS), several
times, next to a baseline measured in the same run; the report is a Markdown table of medians
and ratios. Nothing here is a pass/fail test.
"""
