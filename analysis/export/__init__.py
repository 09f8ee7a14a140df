"""Recorded sessions in the layouts other tools read.

- :mod:`analysis.export.sessions` — one session folder as export-ready tables: per recording
  segment, each eye's samples and events on the tracker clock, and the trials.
- :mod:`analysis.export.bids` — :func:`~analysis.export.bids.export_bids`, a folder of sessions as
  a BIDS 1.11 dataset with eye tracking (BEP020): ``lookwhere export bids``.
"""
