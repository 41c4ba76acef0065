"""Which patients are synthetic: the one rule every cohort read uses to keep them apart.

Synthetic patients (the generated demo cohort, `oncoledger demo --cohort N`, and the two
made-up demo patients that ship beside the case report) are recognised by their id: `SYN-` for
generated ones, `DEMO-` for the shipped ones. Both prefixes are reserved for synthetic data; the
cohort index, `cohort survival` and their REST routes filter on them with `synthetic=true|false`.
"""

from __future__ import annotations

SYNTHETIC_ID_PREFIXES: tuple[str, ...] = ("SYN-", "DEMO-")
GENERATED_PREFIX = "SYN-"


def is_synthetic(patient_id: str) -> bool:
    return patient_id.startswith(SYNTHETIC_ID_PREFIXES)
