"""The command's own argument handling (globs, band lists, output naming), without a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from sam2unext.cli.inputs import expand_scenes, parse_bands, probability_outputs
from sam2unext.errors import InputError, OutputError


def test_expand_scenes_keeps_order_expands_globs_and_drops_duplicates(tmp_path):
    for name in ("b.tif", "a.tif", "c.txt"):
        (tmp_path / name).write_bytes(b"x")
    got = expand_scenes([str(tmp_path / "b.tif"), str(tmp_path / "*.tif")])
    assert got == [tmp_path / "b.tif", tmp_path / "a.tif"]
    with pytest.raises(InputError, match="no file matches"):
        expand_scenes([str(tmp_path / "*.jp2")])
    with pytest.raises(InputError, match="does not exist"):
        expand_scenes([str(tmp_path / "d.tif")])


def test_gdal_vsi_names_are_kept_as_given(tmp_path):
    url = "/vsicurl/https://example.invalid/scenes/a.tif?token=x"
    assert expand_scenes([url]) == [url]  # not Path(url): that collapses "https://"
    assert probability_outputs([url], tmp_path / "res") == [tmp_path / "res/a_prob.tif"]


def test_parse_bands():
    assert parse_bands(None) is None
    assert parse_bands("3,2,1") == (3, 2, 1) and parse_bands("4") == (4,)
    assert parse_bands("red, green,blue") == ("red", "green", "blue")
    for bad in ("0,1,2", "", "1,,2"):
        with pytest.raises(InputError, match="--bands"):
            parse_bands(bad)


def test_probability_outputs_file_folder_and_clashes(tmp_path):
    one, two = Path("x/a.tif"), Path("y/b.tif")
    assert probability_outputs([one], None) == [None]
    assert probability_outputs([one], tmp_path / "out.tif") == [tmp_path / "out.tif"]
    assert probability_outputs([one, two], tmp_path / "res") == [
        tmp_path / "res/a_prob.tif",
        tmp_path / "res/b_prob.tif",
    ]
    assert (tmp_path / "res").is_dir()
    with pytest.raises(OutputError, match="pass a folder with -o"):
        probability_outputs([one, two], tmp_path / "out.tif")
    with pytest.raises(OutputError, match="would both write"):
        probability_outputs([one, Path("z/a.tif")], tmp_path / "res")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        probability_outputs([one], tmp_path / "file")
