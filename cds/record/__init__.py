"""PatientRecord: a normalized, indexed view of one patient built from raw FHIR JSON."""

from cds.record.build import build_record
from cds.record.dates import Duration, parse_datetime, parse_duration
from cds.record.model import ConditionWindows, Entry, PatientRecord

__all__ = [
    "ConditionWindows",
    "Duration",
    "Entry",
    "PatientRecord",
    "build_record",
    "parse_datetime",
    "parse_duration",
]
