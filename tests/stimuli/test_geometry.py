"""Display geometry. Oracle: hand-computed placements on the paper's 1920×1080 screen."""

import numpy as np
import pytest

from stimuli.geometry import DisplayGeometry


def test_paper_geometry_scales_by_two_and_centres():
    # A 500×375 VOC image shown ×2: 1000×750 px, left edge (1920-1000)/2 = 460, top (1080-750)/2 = 165.
    g = DisplayGeometry.fit(500, 375)
    assert (g.display_width_px, g.display_height_px) == (1000, 750)
    assert (g.left_px, g.top_px) == (460.0, 165.0)
    assert g.scale_x == g.scale_y == 2.0


def test_display_to_image_undoes_centring_and_scaling():
    g = DisplayGeometry.fit(500, 375)
    # Screen centre is the image centre; the image's top-left corner maps to (0, 0).
    x, y = g.display_to_image([960.0, 460.0, 1459.999], [540.0, 165.0, 914.999])
    np.testing.assert_allclose(x, [250.0, 0.0, 499.9995])
    np.testing.assert_allclose(y, [187.5, 0.0, 374.9995])
    np.testing.assert_array_equal(g.on_image(x, y), [True, True, True])
    assert not g.on_image(np.array([500.0]), np.array([10.0]))[0]


def test_round_trip():
    g = DisplayGeometry.fit(333, 500)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 333, 50), rng.uniform(0, 500, 50)
    back = g.display_to_image(*g.image_to_display(x, y))
    np.testing.assert_allclose(back, (x, y), atol=1e-12)


def test_largest_fitting_scale_is_used_and_logged(caplog):
    # 500×600 at ×2 would be 1200 px high > 1080: the largest fitting scale is 1080/600 = 1.8.
    with caplog.at_level("INFO", logger="stimuli.geometry"):
        g = DisplayGeometry.fit(500, 600)
    assert (g.display_width_px, g.display_height_px) == (900, 1080)
    assert g.scale_y == pytest.approx(1.8)
    assert "does not fit" in caplog.text


def test_invalid_sizes_are_reported_together():
    with pytest.raises(ValueError, match="image_width_px=0.*display_height_px=-1"):
        DisplayGeometry(0, 10, 10, -1)
    with pytest.raises(ValueError, match="does not fit the screen"):
        DisplayGeometry(1000, 1000, 2000, 2000)
    with pytest.raises(ValueError, match="scale must be > 0"):
        DisplayGeometry.fit(10, 10, scale=0)
