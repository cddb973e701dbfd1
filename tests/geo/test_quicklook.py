"""Quick-look: panels in map coordinates, overview reads, AOI-sized results, PredictResult.quicklook."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from matplotlib.figure import Figure

from sam2unext.geo import predict_raster
from sam2unext.geo.demo.stand_ins import PixelModel
from sam2unext.geo.quicklook import draw_quicklook, read_probability, read_scene_rgb, write_quicklook

from geo_helpers import smooth_rgb, write_raster

ORIGIN = Affine.translation(500_000, 5_400_000) @ Affine.scale(0.5, -0.5)


@pytest.fixture
def result(tmp_path):
    scene = write_raster(tmp_path / "scene.tif", smooth_rgb(200, 260, seed=3), transform=ORIGIN)
    return predict_raster(scene, tmp_path / "scene_prob.tif", model=PixelModel(), progress="none")


def _image_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def test_three_panels_in_map_coordinates_and_a_png(result, tmp_path):
    png = tmp_path / "look.png"
    write_quicklook(result.scene, result.probability, result.vector, png, title="t")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    fig = draw_quicklook(result.scene, result.probability, result.vector)
    panels = _image_axes(fig)
    assert len(panels) == 3
    with rasterio.open(result.probability) as src:
        b = src.bounds
    for ax in panels:
        assert ax.get_xlim() == pytest.approx((b.left, b.right))
        assert ax.get_ylim() == pytest.approx((b.bottom, b.top))
    assert panels[0].get_xlabel() == "EPSG:32633"
    assert panels[2].collections, "polygon outlines drawn"


def test_predict_result_quicklook_returns_the_figure_and_saves(result, tmp_path):
    assert result.scene is not None
    fig = result.quicklook()
    assert isinstance(fig, Figure) and len(_image_axes(fig)) == 3
    png = tmp_path / "saved.png"
    assert isinstance(result.quicklook(png), Figure)
    assert png.stat().st_size > 1000


def test_without_a_scene_two_panels(result):
    fig = draw_quicklook(None, result.probability, result.vector)
    assert len(_image_axes(fig)) == 2


def test_large_rasters_are_read_from_their_overviews(tmp_path):
    """Overviews say 255, the full resolution says 0: a decimated quick-look read shows the overview."""
    path = tmp_path / "prob.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=2048,
        height=2048,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=ORIGIN,
        tiled=True,
    ) as dst:
        dst.write(np.full((1, 2048, 2048), 255, np.uint8))
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4, 8])
        dst.write(np.zeros((1, 2048, 2048), np.uint8))  # overviews are not rebuilt
    prob, extent, _ = read_probability(path, max_side=256)
    assert prob.shape == (256, 256)
    assert float(np.nanmin(prob)) == 1.0, "read from the 8x overview, not the full resolution"
    assert extent == pytest.approx((500_000, 501_024, 5_398_976, 5_400_000))


def test_scene_is_cut_to_the_result_and_stretched(tmp_path):
    """An AOI-sized result shows only its part of the scene; uint16 bands get a percentile stretch."""
    data = smooth_rgb(300, 400, seed=1).astype(np.uint16) * 40 + 1000
    scene = write_raster(tmp_path / "u16.tif", data, transform=ORIGIN)
    sub = ORIGIN @ Affine.translation(100, 50)  # columns 100.., rows 50..
    prob = write_raster(tmp_path / "sub_prob.tif", np.zeros((1, 120, 150), np.uint8), transform=sub)
    with rasterio.open(prob) as src:
        b = src.bounds
    rgba, extent = read_scene_rgb(scene, (b.left, b.bottom, b.right, b.top))
    assert rgba.shape == (120, 150, 4) and rgba.dtype == np.uint8
    assert extent == pytest.approx((b.left, b.right, b.bottom, b.top))
    assert rgba[..., :3].min() == 0 and rgba[..., :3].max() == 255
    np.testing.assert_array_equal(
        rgba[..., :3], read_scene_rgb(scene, (b.left, b.bottom, b.right, b.top), bands=(1, 2, 3))[0][..., :3]
    )
    fig = draw_quicklook(scene, prob, None, bands=(3, 2, 1))
    assert len(_image_axes(fig)) == 3
