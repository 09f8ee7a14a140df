"""Stimulus sets and display geometry, shared by the experiment and the analysis."""
