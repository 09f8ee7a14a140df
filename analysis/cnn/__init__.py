"""CNN attention maps (paper §3) and the map store that holds them.

One method per module, each citing its equations: :mod:`~analysis.cnn.cam` (eq. 1),
:mod:`~analysis.cnn.gradcam` (eq. 2–4), :mod:`~analysis.cnn.guided_backprop`,
:mod:`~analysis.cnn.guided_gradcam`, :mod:`~analysis.cnn.dense` (eq. 5–14). The prepared VGG16 and
its input geometry live in :mod:`~analysis.cnn.model`; :mod:`~analysis.cnn.engine` computes every
map of a batch from one forward pass; :mod:`~analysis.cnn.precompute` fills a
:mod:`~analysis.cnn.store`, which the analysis and the server read.

This package file imports nothing, so ``analysis.cnn.store`` (and ``analysis.cnn.cli``) can be
imported without torch.
"""
