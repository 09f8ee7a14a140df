"""The science of lookwhere, with no network and no GUI.

Fixation tables (:mod:`analysis.fixations`), readers (:mod:`analysis.readers`), heatmaps
(:mod:`analysis.heatmap`), metrics (:mod:`analysis.metrics`), baselines
(:mod:`analysis.baselines`), statistics (:mod:`analysis.stats`), CNN attention maps
(:mod:`analysis.cnn`) and the offline re-analysis (:mod:`analysis.offline`).
"""
