"""One patient's record as a FHIR R4 (4.0.1) Bundle of type `collection`, mapped to mCODE STU4.

Built from the patient's events as they count (`effective.all_items`): amended events appear
as their current version (`meta.versionId` = 1 + corrections) and retracted ones as
`entered-in-error`, each correction with a `Provenance` naming its author, time and reason.
Every resource carries `meta.source` = `urn:uuid:<ledger event id>` of the event it comes from.
Resource ids are UUIDv5 of that event id (and a part name), so the same history always gives
the same Bundle.

- `bundle.py`: the Bundle being built and the helpers every mapper uses.
- `disease.py`, `treatment.py`, `observations.py`: one mapper per event type.
- `document.py`: the Bundle of a history, and `export_fhir`, the service call.
- `codes.py`: the code systems, codes and profiles, each with where it comes from.
"""

from projections.fhir.document import export_fhir, fhir_bundle

__all__ = ["export_fhir", "fhir_bundle"]
