"""What the analysis scores, defined once: the metrics (name, title, direction) and the kinds of map.

The offline report, the live server and the dashboard (which receives both registries with the
scores) all read them from here.

Map kinds
---------
``baseline``
    ``center_bias`` (also the information-gain baseline) and ``dataset_prior``.
``control``
    ``blank`` (a constant map) and ``uniform`` (a uniform density): what a map without information scores.
``human``
    ``human_gold``: the gold standard (each participant predicted by the others' density, Kümmerer et
    al. 2015), the ceiling; ``human_loso``: each participant scored against the others' raw heatmap.
``cnn``
    Every map of a map store (``lookwhere precompute``): the CNN attention methods and the dense
    model's layers (``dense_*``, drawn in their own colour by the report, :func:`is_dense_layer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from analysis.metrics import METRICS

__all__ = [
    "MetricInfo",
    "METRIC_REGISTRY",
    "metric_info",
    "MapKind",
    "MAP_KINDS",
    "BASELINE_MAPS",
    "CONTROL_MAPS",
    "HUMAN_MAPS",
    "map_kind",
    "is_dense_layer",
]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One metric: its name in every table, a title for figures, and its direction.

    Attributes
    ----------
    name : str
        As in :data:`analysis.metrics.METRICS`.
    title : str
        For figures and tables (the paper's equation where it has one).
    higher_is_better : bool
        False for the distances (MAE, KL divergence).
    """

    name: str
    title: str
    higher_is_better: bool

    @property
    def arrow(self) -> str:
        """``"↑"`` (higher is better) or ``"↓"``."""
        return "↑" if self.higher_is_better else "↓"


#: Every metric of :data:`analysis.metrics.METRICS`, in that order.
METRIC_REGISTRY: dict[str, MetricInfo] = {
    info.name: info
    for info in (
        MetricInfo("mae", "MAE (eq. 15)", higher_is_better=False),
        MetricInfo("nss", "NSS", higher_is_better=True),
        MetricInfo("cc", "CC", higher_is_better=True),
        MetricInfo("sim", "SIM", higher_is_better=True),
        MetricInfo("kl_div", "KL divergence", higher_is_better=False),
        MetricInfo("auc_judd", "AUC-Judd", higher_is_better=True),
        MetricInfo("auc_borji", "AUC-Borji", higher_is_better=True),
        MetricInfo("auc_shuffled", "shuffled AUC", higher_is_better=True),
        MetricInfo("info_gain", "information gain (bits/fix)", higher_is_better=True),
    )
}
if tuple(METRIC_REGISTRY) != METRICS:  # a programming error in this module, caught at import
    raise RuntimeError(f"METRIC_REGISTRY lists {tuple(METRIC_REGISTRY)}; analysis.metrics.METRICS is {METRICS}")


def metric_info(name: str) -> MetricInfo:
    """The registry entry of metric ``name``.

    Raises
    ------
    KeyError
        ``name`` is not a metric; the message lists the metrics.
    """
    try:
        return METRIC_REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; the metrics are {list(METRIC_REGISTRY)}") from None


MapKind = Literal["baseline", "control", "human", "cnn"]
#: The map kinds, in the order tables list them.
MAP_KINDS: tuple[MapKind, ...] = ("baseline", "control", "human", "cnn")
#: The baseline maps, scored on every image.
BASELINE_MAPS: tuple[str, ...] = ("center_bias", "dataset_prior")
#: The controls: a blank (constant) map and a uniform density (:data:`analysis.baselines.CONTROLS`).
CONTROL_MAPS: tuple[str, ...] = ("blank", "uniform")
#: The human references: the gold standard (Kümmerer et al. 2015) and each participant against the others.
HUMAN_MAPS: tuple[str, ...] = ("human_gold", "human_loso")


def map_kind(name: str) -> MapKind:
    """The kind of map ``name``: a baseline, a control, a human reference, or a map store's (CNN) map."""
    if name in BASELINE_MAPS:
        return "baseline"
    if name in CONTROL_MAPS:
        return "control"
    if name in HUMAN_MAPS:
        return "human"
    return "cnn"


def is_dense_layer(name: str) -> bool:
    """Whether store map ``name`` is one of the dense model's layer maps (``dense_*``)."""
    return name.startswith("dense_")
