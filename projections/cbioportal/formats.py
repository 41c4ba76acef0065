"""The file formats of the study's meta and data files (tab-separated, `NA` for missing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.cbioportal.tables import NA, Attribute, Row

# -- the file formats ------------------------------------------------------------------------


def meta_file(fields: dict[str, str]) -> str:
    return "".join(f"{key}: {value}\n" for key, value in fields.items())


def clinical_meta(study_id: str, datatype: str, level: str) -> str:
    return meta_file(
        {
            "cancer_study_identifier": study_id,
            "genetic_alteration_type": "CLINICAL",
            "datatype": datatype,
            "data_filename": f"data_clinical_{level}.txt",
        }
    )


def clinical_data(attributes: Sequence[Attribute], rows: Sequence[Row]) -> str:
    header = [
        "#" + "\t".join(clean(a.display) for a in attributes),
        "#" + "\t".join(clean(a.description) for a in attributes),
        "#" + "\t".join(a.datatype for a in attributes),
        "#" + "\t".join(str(a.priority) for a in attributes),
    ]
    table = tsv_table([a.name for a in attributes], rows, missing=NA)
    return "\n".join(header) + "\n" + table


def tsv_table(columns: Sequence[str], rows: Sequence[Row], *, missing: str) -> str:
    lines = ["\t".join(columns)]
    lines.extend("\t".join(_cell(row.get(c), missing) for c in columns) for row in rows)
    return "\n".join(lines) + "\n"


def _cell(value: Any, missing: str) -> str:
    if value is None:
        return missing
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return number(value)
    text = clean(str(value))
    return text if text else missing


def number(value: float) -> str:
    rounded = round(value, 4)
    return str(int(rounded)) if rounded.is_integer() else repr(rounded)


def clean(text: str) -> str:
    """One line of text without tabs: free text must not break the table."""
    return " ".join(text.split())
