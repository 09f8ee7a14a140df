"""The validated configuration of ``lookwhere serve``, written next to the data it produces."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from analysis.scoring_config import ScoringConfig
from lookwhere.quality import QualityThresholds
from lookwhere.transport import DEFAULT_HOST, is_loopback

__all__ = ["ServeConfig", "CONFIG_FILE"]

#: Written in ``data_dir`` at every start (the previous one is kept as ``serve_config.prev.json``).
CONFIG_FILE = "serve_config.json"


class ServeConfig(ScoringConfig):
    """What the analysis server serves and how it scores: the scoring choices are
    :class:`~analysis.scoring_config.ScoringConfig`'s fields, exactly as ``lookwhere analyze``'s.

    Attributes
    ----------
    stimuli : Path
        Folder of the stimulus images.
    maps : Path or None
        Map store (``lookwhere precompute``); ``None``: baselines only.
    data_dir : Path
        Where records are persisted and the pooled state is rebuilt from.
    sessions : Path or None
        Session folders (or a folder of them) whose naming audio the review page opens; ``None``:
        those under ``data_dir``.
    bind : str
        Interface of both the HTTP and the ZeroMQ servers. Anything but loopback requires a token.
    http_port, zmq_port : int
        0 picks a free port.
    token : str or None
        Required from clients when not on loopback (generated when not given).
    curve_secret, curve_allowed : Path or None
        Server secret key file and the folder of allowed client public keys (``lookwhere keys``).
    device : {"auto", "cpu", "cuda"}
        Where the live scores are computed (``auto``: CUDA when torch sees a GPU); same numbers.
    validation_good_deg, validation_poor_deg, drift_alarm_deg : float
        The lab's data-quality limits on the dashboard (:class:`lookwhere.quality.QualityThresholds`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stimuli: Path
    maps: Path | None = None
    data_dir: Path = Path("lookwhere-data")
    sessions: Path | None = None
    bind: str = DEFAULT_HOST
    http_port: int = Field(8765, ge=0, le=65535)
    zmq_port: int = Field(5555, ge=0, le=65535)
    token: str | None = None
    curve_secret: Path | None = None
    curve_allowed: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    validation_good_deg: float = Field(0.5, gt=0)
    validation_poor_deg: float = Field(1.0, gt=0)
    drift_alarm_deg: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ServeConfig:
        if (self.curve_secret is None) != (self.curve_allowed is None):
            raise ValueError(
                "--curve-secret and --curve-allowed go together (the server key and the "
                "folder of allowed client keys; make them with `lookwhere keys`)"
            )
        self.quality  # noqa: B018 — builds the thresholds, whose checks (good <= poor) run at start
        if self.token is None and not self.is_loopback:
            object.__setattr__(self, "token", secrets.token_urlsafe(18))
        return self

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.bind)

    @property
    def quality(self) -> QualityThresholds:
        """The data-quality limits (what :class:`server.state.LiveState` takes as ``quality``)."""
        return QualityThresholds(
            validation_good_deg=self.validation_good_deg,
            validation_poor_deg=self.validation_poor_deg,
            drift_alarm_deg=self.drift_alarm_deg,
        )

    @property
    def scoring(self) -> ScoringConfig:
        """The scoring choices alone (what :class:`server.state.LiveState` takes)."""
        return ScoringConfig(**{name: getattr(self, name) for name in ScoringConfig.model_fields})

    def write(self, folder: Path) -> Path:
        """Write the configuration (without the token) to ``folder/serve_config.json``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_FILE
        if path.exists():
            path.replace(folder / "serve_config.prev.json")
        data = json.loads(self.model_dump_json(exclude={"token"}))
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path
