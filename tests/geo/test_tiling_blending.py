"""Pure tiling and blending functions."""

import numpy as np
import pytest

from sam2unext.errors import InputError
from sam2unext.geo.running.tiling import axis_offsets, clip_window, make_grid, overlap_pixels, pad_to_tile
from sam2unext.geo.writing.blending import ramp_window, tile_weights
from sam2unext.geo.writing.quantize import probability_from_sums
from sam2unext.geo.writing.stitching import SceneWeights


@pytest.mark.parametrize(
    "length,tile,stride", [(100, 32, 24), (32, 32, 24), (33, 32, 24), (10, 32, 24), (1000, 256, 192)]
)
def test_axis_offsets_cover_every_pixel_and_stay_inside(length, tile, stride):
    offsets = axis_offsets(length, tile, stride)
    covered = np.zeros(length, bool)
    for o in offsets:
        covered[o : o + tile] = True
        assert o >= 0
        if length >= tile:
            assert o + tile <= length
    assert covered.all()
    assert list(offsets) == sorted(set(offsets))


def test_grid_shape_and_windows():
    grid = make_grid(100, 70, 32, 0.25)
    assert grid.overlap_px == 8
    assert grid.shape == (len(grid.row_offsets), len(grid.col_offsets))
    assert grid.row_offsets[-1] == 100 - 32 and grid.col_offsets[-1] == 70 - 32
    w = grid.window(len(grid) - 1)
    assert (w.row_off, w.col_off, w.height, w.width) == (68, 38, 32, 32)


def test_overlap_is_a_fraction_or_pixels_written_px_and_nothing_else():
    assert overlap_pixels(64, "16px") == 16 and overlap_pixels(64, " 16 PX ") == 16
    assert overlap_pixels(64, 0.5) == 32 and overlap_pixels(64, "0.25") == 16 and overlap_pixels(64, 0) == 0
    for bad in (64, 16, 1.0, 1.5, -0.1, "64px", "-2px", "abc", "1.5px", "px"):
        with pytest.raises(InputError, match="overlap"):
            overlap_pixels(64, bad)
    with pytest.raises(InputError):
        make_grid(10, 10, 0)


def test_clip_and_pad():
    grid = make_grid(20, 25, 32, 0.25)
    assert len(grid) == 1
    inner = clip_window(grid.window(0), 20, 25)
    assert (inner.height, inner.width) == (20, 25)
    tile = pad_to_tile(np.ones((3, 20, 25), np.uint8), 32)
    assert tile.shape == (3, 32, 32)
    assert pad_to_tile(np.ones((3, 1, 5), np.uint8), 8).shape == (3, 8, 8)


def test_weights_strictly_positive_and_symmetric():
    w = ramp_window(64, 16)
    assert (w > 0).all() and w.max() == 1.0
    np.testing.assert_array_equal(w, w[::-1])
    assert (ramp_window(8, 0) == 1).all()
    assert (tile_weights(16, 8) > 0).all()


def test_fixed_point_shares_give_p_exactly_when_tiles_agree():
    """Each tile adds rint(p * row_share ⊗ col_share): where every tile says p, the sum is
    p * 2**52 to a few units and the float32 result is p itself."""
    rng = np.random.default_rng(0)
    grid = make_grid(90, 90, 32, "12px")
    w = SceneWeights(grid)
    p = rng.random((90, 90), dtype=np.float32)
    sums = np.zeros((90, 90))
    for r, r0 in enumerate(grid.row_offsets):
        for c, c0 in enumerate(grid.col_offsets):
            tile = p[r0 : r0 + 32, c0 : c0 + 32]
            sums[r0 : r0 + 32, c0 : c0 + 32] += np.rint(tile * w.share(r, c))
    assert sums.max() < 2.0**53  # exact integers in float64: any order of addition gives these sums
    np.testing.assert_array_equal(probability_from_sums(sums), p)
