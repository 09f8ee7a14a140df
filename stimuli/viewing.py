"""Viewing geometry: how far the participant sits from how wide a screen, and pixels → degrees.

Degrees of visual angle are what eye-tracking quality is judged in (a validation's error, a
drift-correction offset), so the experiment and the server convert the trackers' pixels here, in
one place. The screen is flat and the participant's eye faces its centre; a span of ``d`` cm
centred on the line of sight subtends ``2·atan(d / 2D)`` at distance ``D`` (the usual definition;
off-centre spans subtend slightly less, < 2 % at the edge of a 53 cm screen at 70 cm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ViewingGeometry", "LAB_SCREEN_WIDTH_CM", "LAB_VIEWING_DISTANCE_CM"]

#: The lab's defaults when a session does not say: a 24-inch 16:9 monitor (53.1 cm wide) at 70 cm.
#: Sessions that rely on them are flagged (``SessionConfig.viewing_defaults``), and the dashboard
#: says so, since every degree shown then depends on them.
LAB_SCREEN_WIDTH_CM = 53.1
LAB_VIEWING_DISTANCE_CM = 70.0


@dataclass(frozen=True)
class ViewingGeometry:
    """A screen of ``screen_width_px`` pixels over ``screen_width_cm`` cm, seen from
    ``viewing_distance_cm`` cm (square pixels assumed).

    Parameters
    ----------
    screen_width_px : int
        Horizontal resolution, pixels (> 0).
    screen_width_cm : float
        Visible width of the screen, cm (> 0).
    viewing_distance_cm : float
        Eye to screen centre, cm (> 0).
    """

    screen_width_px: int
    screen_width_cm: float
    viewing_distance_cm: float

    def __post_init__(self) -> None:
        problems = [
            f"{name}={getattr(self, name)!r}"
            for name in ("screen_width_px", "screen_width_cm", "viewing_distance_cm")
            if not (isinstance(getattr(self, name), (int, float)) and math.isfinite(getattr(self, name)))
            or getattr(self, name) <= 0
        ]
        if problems:
            raise ValueError(f"ViewingGeometry values must be positive and finite; got {', '.join(problems)}")

    @property
    def cm_per_px(self) -> float:
        """Size of one pixel, cm."""
        return self.screen_width_cm / self.screen_width_px

    def px_to_deg(self, span_px):
        """Visual angle of spans centred on the line of sight.

        Parameters
        ----------
        span_px : float or array_like, shape (N,)
            Lengths on the screen, display pixels (≥ 0; a signed offset gives a signed angle).

        Returns
        -------
        float or ndarray, shape (N,)
            Degrees of visual angle, ``2·atan(span_cm / (2·distance_cm))``.
        """
        span_cm = np.asarray(span_px, dtype=float) * self.cm_per_px
        degrees = np.degrees(2.0 * np.arctan(span_cm / (2.0 * self.viewing_distance_cm)))
        return float(degrees) if degrees.ndim == 0 else degrees

    def deg_to_px(self, angle_deg):
        """Inverse of :meth:`px_to_deg`: the span in display pixels subtending ``angle_deg``."""
        span_cm = 2.0 * self.viewing_distance_cm * np.tan(np.radians(np.asarray(angle_deg, dtype=float)) / 2.0)
        span_px = span_cm / self.cm_per_px
        return float(span_px) if span_px.ndim == 0 else span_px

    @property
    def px_per_deg(self) -> float:
        """Pixels per degree at the screen centre (1° centred on the line of sight)."""
        return self.deg_to_px(1.0)
