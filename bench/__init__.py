"""Benchmarks of footpath-cds and their synthetic patient generator."""
