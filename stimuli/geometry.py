"""Display geometry: how an original image is scaled and centred on the screen.

The study shows every image scaled ×2 and centred on a black 1920×1080 screen (paper §2). When ×2
does not fit, the largest scale that does is used and logged. Both the experiment (to draw) and the
analysis (to map gaze back to image pixels) use this one definition.

Coordinates follow :mod:`lookwhere.records`: continuous pixels, origin at the top-left corner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DisplayGeometry", "DEFAULT_SCREEN_PX", "DEFAULT_SCALE"]

logger = logging.getLogger(__name__)

DEFAULT_SCREEN_PX = (1920, 1080)
DEFAULT_SCALE = 2.0


@dataclass(frozen=True)
class DisplayGeometry:
    """Placement of one image on the screen.

    Parameters
    ----------
    image_width_px, image_height_px : int
        Size of the original image.
    display_width_px, display_height_px : int
        Size of the image as drawn on the screen.
    screen_width_px, screen_height_px : int
        Size of the screen.

    Notes
    -----
    The image is centred: its left edge is at ``(screen_width_px - display_width_px) / 2``. The
    scale per axis is ``display / image``; use :meth:`fit` to build a geometry from a requested
    scale.
    """

    image_width_px: int
    image_height_px: int
    display_width_px: int
    display_height_px: int
    screen_width_px: int = DEFAULT_SCREEN_PX[0]
    screen_height_px: int = DEFAULT_SCREEN_PX[1]

    def __post_init__(self) -> None:
        problems = [
            f"{name}={getattr(self, name)!r}"
            for name in (
                "image_width_px",
                "image_height_px",
                "display_width_px",
                "display_height_px",
                "screen_width_px",
                "screen_height_px",
            )
            if not isinstance(getattr(self, name), (int, np.integer)) or getattr(self, name) <= 0
        ]
        if problems:
            raise ValueError(f"DisplayGeometry sizes must be positive integers; got {', '.join(problems)}")
        if self.display_width_px > self.screen_width_px or self.display_height_px > self.screen_height_px:
            raise ValueError(
                f"the displayed image ({self.display_width_px}×{self.display_height_px} px) does not fit "
                f"the screen ({self.screen_width_px}×{self.screen_height_px} px); use DisplayGeometry.fit"
            )

    @classmethod
    def fit(
        cls,
        image_width_px: int,
        image_height_px: int,
        *,
        screen_width_px: int = DEFAULT_SCREEN_PX[0],
        screen_height_px: int = DEFAULT_SCREEN_PX[1],
        scale: float = DEFAULT_SCALE,
    ) -> DisplayGeometry:
        """Scale an image by ``scale``, or by the largest factor that fits the screen.

        Parameters
        ----------
        image_width_px, image_height_px : int
            Size of the original image.
        screen_width_px, screen_height_px : int
            Size of the screen (default 1920×1080, the paper's).
        scale : float
            Requested scale factor (default 2, the paper's).

        Returns
        -------
        DisplayGeometry
            With ``display = round(image * s)``, where ``s = scale`` when that fits and otherwise
            the largest (possibly fractional) factor that fits; the reduction is logged.
        """
        if not scale > 0:
            raise ValueError(f"scale must be > 0; got {scale!r}")
        if image_width_px <= 0 or image_height_px <= 0:
            raise ValueError(f"image size must be positive; got {image_width_px}×{image_height_px} px")
        fitting = min(scale, screen_width_px / image_width_px, screen_height_px / image_height_px)
        if fitting < scale:
            logger.info(
                "image %d×%d px does not fit %d×%d px at scale %g; using scale %.4f",
                image_width_px,
                image_height_px,
                screen_width_px,
                screen_height_px,
                scale,
                fitting,
            )
        display_w = min(int(round(image_width_px * fitting)), screen_width_px)
        display_h = min(int(round(image_height_px * fitting)), screen_height_px)
        return cls(
            int(image_width_px),
            int(image_height_px),
            display_w,
            display_h,
            int(screen_width_px),
            int(screen_height_px),
        )

    @property
    def scale_x(self) -> float:
        """Display pixels per image pixel along x."""
        return self.display_width_px / self.image_width_px

    @property
    def scale_y(self) -> float:
        """Display pixels per image pixel along y."""
        return self.display_height_px / self.image_height_px

    @property
    def left_px(self) -> float:
        """Screen x of the image's left edge, in display pixels."""
        return (self.screen_width_px - self.display_width_px) / 2

    @property
    def top_px(self) -> float:
        """Screen y of the image's top edge, in display pixels."""
        return (self.screen_height_px - self.display_height_px) / 2

    def display_to_image(self, x_display_px, y_display_px):
        """Map screen positions to original-image pixels (undo centring, then scaling).

        Parameters
        ----------
        x_display_px, y_display_px : float or array_like, shape (N,)
            Positions on the screen, in display pixels.

        Returns
        -------
        x_image_px, y_image_px : ndarray, shape (N,)
            The same positions in original-image pixels; points off the image map outside
            ``[0, image_width_px) × [0, image_height_px)``.
        """
        x = (np.asarray(x_display_px, dtype=float) - self.left_px) / self.scale_x
        y = (np.asarray(y_display_px, dtype=float) - self.top_px) / self.scale_y
        return x, y

    def image_to_display(self, x_image_px, y_image_px):
        """Map original-image pixels to screen positions (inverse of :meth:`display_to_image`)."""
        x = np.asarray(x_image_px, dtype=float) * self.scale_x + self.left_px
        y = np.asarray(y_image_px, dtype=float) * self.scale_y + self.top_px
        return x, y

    def on_image(self, x_image_px, y_image_px):
        """Boolean mask of positions that fall on the image, shape (N,)."""
        x = np.asarray(x_image_px, dtype=float)
        y = np.asarray(y_image_px, dtype=float)
        return (x >= 0) & (x < self.image_width_px) & (y >= 0) & (y < self.image_height_px)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (every value an int, in pixels), for records and the wire protocol."""
        return {
            "image_width_px": self.image_width_px,
            "image_height_px": self.image_height_px,
            "display_width_px": self.display_width_px,
            "display_height_px": self.display_height_px,
            "screen_width_px": self.screen_width_px,
            "screen_height_px": self.screen_height_px,
        }
