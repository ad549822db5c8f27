"""footpath-cds: a CDS Hooks 2.0 service linking foot symptoms to their lumbar or mimic source."""

__version__ = "0.1.0"
