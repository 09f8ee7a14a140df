"""lookwhere: do humans look where deep CNNs "attend"?

This package holds what every part of the system shares: the one definition of the fixation
record (:mod:`lookwhere.records`) and the ``lookwhere`` command line (:mod:`lookwhere.cli`).
The science lives in :mod:`analysis`, the PsychoPy task in :mod:`experiment`, the live server in
:mod:`server` and stimulus sets with their display geometry in :mod:`stimuli`.
"""

__version__ = "0.1.0"
