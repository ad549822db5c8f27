"""A hook call's patient data: the prefetch templates and their filling, what the CDS Client
prefetched, the grant to read the rest from the FHIR server, and the client that reads it."""
