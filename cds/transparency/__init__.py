"""What a clinician or a committee may see of the catalogue: a page for every rule (its
governance record, evidence and logic in plain language) and the value sets as FHIR ValueSet
resources (docs/transparency.md). Read from the loaded catalogue only: no patient data."""
