"""Snooze after an override (#16 point 4, docs/governance.md): a card overridden with a reason
its template marks as snoozing is not shown again, for the same patient and evidence, for its
rule's snooze period. ``reasons`` reads the marks (pure); ``snoozing`` decides per call and
records per feedback, over ``cds.store.snoozes``."""
