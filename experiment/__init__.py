"""Experiment package (see SPEC §3); built by its own issue."""
