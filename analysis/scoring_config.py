"""How fixations are scored, defined once for ``lookwhere analyze`` and ``lookwhere serve``.

:class:`ScoringConfig` holds every choice a score depends on (heatmap parameters, metrics and
their variant, MAE normalisation, seed, centre-bias σ, the Borji AUCs' splits and threshold step).
The offline analysis (:class:`analysis.offline.AnalysisConfig`) and the live server
(:class:`server.config.ServeConfig`) embed it, so live and offline numbers are asked for the same
way and agree; both write it next to their results. Their command-line options are generated from
it (:func:`add_arguments`, :func:`from_args`): a default or a choice is written here only.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from analysis.heatmap import HeatmapParams
from analysis.metrics import METRICS

__all__ = ["ScoringConfig", "AUC_SPLITS", "AUC_STEP", "add_arguments", "from_args"]

#: The Borji AUCs of :mod:`analysis.engine` and :func:`analysis.metrics.score_map`: MIT's 100
#: random splits and thresholds ``0:0.1:1`` on the min-max scaled map.
AUC_SPLITS, AUC_STEP = 100, 0.1


class ScoringConfig(BaseModel):
    """Every choice a score depends on; the paper's pipeline with SPEC §2's replication choices by
    default.

    Attributes
    ----------
    heatmap : HeatmapParams
        How fixations are selected and become heatmaps.
    metrics : tuple of str
        Names from :data:`analysis.metrics.METRICS`, in the order tables list them.
    metric_variant : {"mit", "pysaliency"}
        Metric definitions: the MIT saliency benchmark's, or pysaliency's.
    mae_normalize : {"minmax", "none"}
        Min-max both maps to [0, 1] before MAE (SPEC §2); ``"none"`` is the paper-literal MAE.
    seed : int
        Seed of the random metrics (AUC-Judd jitter, AUC-Borji and shuffled-AUC sampling).
    center_bias_sigma_fraction : float
        σ of the centre-bias baseline (also the information-gain baseline) as a fraction of the
        image size.
    auc_splits, auc_step : int, float
        Random splits and threshold step of AUC-Borji and shuffled AUC. The scoring engine
        computes MIT's definition (:data:`AUC_SPLITS`, :data:`AUC_STEP`) only: other values are
        refused, never silently ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    heatmap: HeatmapParams = HeatmapParams()
    metrics: tuple[str, ...] = Field(METRICS, description="metrics to compute, comma-separated (default: all)")
    metric_variant: Literal["mit", "pysaliency"] = Field(
        "mit", description="metric definitions: MIT saliency benchmark (default) or pysaliency"
    )
    mae_normalize: Literal["minmax", "none"] = Field(
        "minmax", description="min-max both maps before MAE (default); 'none' is the paper-literal MAE"
    )
    seed: int = Field(0, description="seed of the random metrics (shuffled AUC, AUC-Borji)")
    center_bias_sigma_fraction: float = Field(
        0.25, gt=0, description="σ of the centre-bias baseline as a fraction of the image size (default: 0.25)"
    )
    auc_splits: int = Field(AUC_SPLITS, ge=1, description="random splits of AUC-Borji and shuffled AUC (MIT: 100)")
    auc_step: float = Field(AUC_STEP, gt=0, le=1, description="threshold step of AUC-Borji and shuffled AUC (MIT: 0.1)")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
        if not value:
            raise ValueError(f"metrics must name at least one of {list(METRICS)}")
        return value

    @field_validator("auc_splits", "auc_step")
    @classmethod
    def _engine_auc(cls, value: float, info: Any) -> float:
        supported = {"auc_splits": AUC_SPLITS, "auc_step": AUC_STEP}[info.field_name]
        if value != supported:
            raise ValueError(
                f"{info.field_name} must be {supported}: the scoring engine computes AUC-Borji and shuffled AUC "
                f"on MIT's {AUC_SPLITS} splits with threshold step {AUC_STEP} (analysis.engine); got {value!r}"
            )
        return value

    def engine_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`analysis.engine.ImageEngine` (and
        :func:`analysis.metrics.score_map`): ``metrics``, ``seed``, ``variant``, ``mae_normalize``."""
        return dict(metrics=self.metrics, seed=self.seed, variant=self.metric_variant, mae_normalize=self.mae_normalize)


# -- command-line options ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    """One command-line option of a :class:`ScoringConfig` field (``path``: field names from the top).

    Defaults, types and choices come from the model; ``negate`` makes a ``True``-by-default switch
    ``--no-…``; ``none_as`` is the option value that stands for None.
    """

    path: tuple[str, ...]
    flag: str
    help: str | None = None  # default: the field's description
    negate: bool = False
    none_as: Any = None


_HEATMAP_OPTIONS = (
    _Option(("heatmap", "sigma_px"), "--sigma-px", "Gaussian σ in image pixels (paper: 20)"),
    _Option(
        ("heatmap", "kernel_size_px"),
        "--kernel-size-px",
        "kernel side in pixels (paper: 80); 0 = untruncated",
        none_as=0,
    ),
    _Option(
        ("heatmap", "duration_weighted"),
        "--no-duration-weighting",
        "count fixations instead of adding durations",
        negate=True,
    ),
    _Option(("heatmap", "exclude_first_fixation"), "--exclude-first-fixation", "drop each trial's first fixation"),
    _Option(
        ("heatmap", "even_kernel_centre"),
        "--kernel-centre",
        "anchor of an even kernel: MATLAB conv2 'same' (default, the paper's) or SciPy convolve2d 'same' "
        "(half a pixel down and right)",
    ),
)
_OPTIONS = (
    *_HEATMAP_OPTIONS,
    *(_Option((name,), "--" + name.replace("_", "-")) for name in ScoringConfig.model_fields if name != "heatmap"),
)
_DEFAULTS = ScoringConfig()


def _field_info(path: tuple[str, ...]) -> tuple[Any, Any, str | None]:
    """The annotation, default and description of the field at ``path``."""
    default: Any = _DEFAULTS
    for name in path[:-1]:
        default = getattr(default, name)
    info = type(default).model_fields[path[-1]]
    return info.annotation, getattr(default, path[-1]), info.description


def _dest(option: _Option) -> str:
    return "scoring__" + "__".join(option.path)


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add one option per scoring choice to ``parser`` (``lookwhere analyze`` and ``lookwhere serve``)."""
    for option in _OPTIONS:
        annotation, default, description = _field_info(option.path)
        help_text = option.help or description
        if annotation is bool:
            action = "store_false" if option.negate else "store_true"
            parser.add_argument(option.flag, dest=_dest(option), action=action, default=default, help=help_text)
            continue
        metavar = option.flag.removeprefix("--").replace("-", "_").upper()
        kwargs: dict[str, Any] = {"dest": _dest(option), "help": help_text, "metavar": metavar}
        if typing.get_origin(annotation) is Literal:
            kwargs["choices"] = list(typing.get_args(annotation))
            del kwargs["metavar"]  # argparse shows the choices
        elif option.path == ("metrics",):
            kwargs["type"] = _comma_list
            kwargs["metavar"] = "NAME,NAME"
        else:
            scalar = next(t for t in (int, float, str) if t is annotation or t in typing.get_args(annotation))
            kwargs["type"] = scalar
        parser.add_argument(option.flag, default=option.none_as if default is None else default, **kwargs)


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def from_args(args: argparse.Namespace) -> ScoringConfig:
    """The :class:`ScoringConfig` of the options :func:`add_arguments` added.

    Raises
    ------
    pydantic.ValidationError
        A value the configuration refuses (e.g. an unknown metric), with the reason.
    """
    values: dict[str, Any] = {}
    for option in _OPTIONS:
        value = getattr(args, _dest(option))
        if option.none_as is not None and value == option.none_as:
            value = None
        target = values
        for name in option.path[:-1]:
            target = target.setdefault(name, {})
        target[option.path[-1]] = value
    return ScoringConfig.model_validate(values)
