"""The flags of ``predict`` map onto ``SceneOptions`` in one table: every field and every flag has its row."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

import sam2unext.geo.api as geo_api
from sam2unext.cli import predict as cli_predict
from sam2unext.cli.main import main
from sam2unext.geo.options import SceneOptions


class _Reads(dict):
    """The parsed flags, recording which ones a row reads."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def _defaults() -> _Reads:
    return _Reads({name: p.default for name, p in inspect.signature(cli_predict.predict).parameters.items()})


def test_every_field_has_a_row_or_is_api_only():
    names = {f.name for f in fields(SceneOptions)}
    table, api_only = set(cli_predict.SCENE_FLAGS), set(cli_predict.API_ONLY)
    assert not table & api_only
    assert table | api_only == names, f"no row for {sorted(names - table - api_only)}"


def test_every_flag_is_read_by_a_row_or_is_no_scene_option():
    flags = _defaults()
    for name, how in cli_predict.SCENE_FLAGS.items():
        if how is None:
            flags[name]  # a flag named like its field
        else:
            how(flags)
    params = set(inspect.signature(cli_predict.predict).parameters)
    assert not flags.read & set(cli_predict.OTHER_FLAGS)
    assert flags.read | set(cli_predict.OTHER_FLAGS) == params, f"no row reads {sorted(params - flags.read)}"


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """The options each scene would run with (the run is replaced by a recorder)."""
    calls: list[SceneOptions] = []

    class Result:
        probability = tmp_path / "s_prob.tif"
        vector = None

        def __getattr__(self, name):
            return 0

    def fake(source, output, options, models, reporter, plan=None):
        calls.append(options)
        return Result()

    monkeypatch.setattr(geo_api, "run_scene", fake)
    monkeypatch.setattr(geo_api, "_preflight", lambda *args, **kw: None)
    scene = tmp_path / "s.tif"
    scene.write_bytes(b"")
    return calls, scene


def test_flags_reach_their_fields(captured):
    calls, scene = captured
    line = ["predict", str(scene), "--preset", "sam2unext-test", "--progress", "none", "--tile-size", "64"]
    line += ["--overlap", "16px", "--dtype", "float32", "--format", "fgb", "--bands", "3,2,1", "--chunk-size", "512"]
    line += ["--threshold", "0.7", "--min-area", "4", "--fill-holes", "--precision", "float32", "--device", "cpu"]
    assert main(line) == 0
    opts = calls[0]
    assert (opts.tile_size, opts.overlap, opts.out_dtype, opts.vector_format) == (64, "16px", "float32", "fgb")
    assert (opts.bands, opts.chunk_size, opts.threshold, opts.min_area) == ((3, 2, 1), 512, 0.7, 4.0)
    assert (opts.fill_holes, opts.precision, opts.device, opts.vector) == (True, "float32", "cpu", True)


def test_a_bad_option_value_is_refused_before_any_scene_is_read(captured, capsys):
    calls, scene = captured
    assert main(["predict", str(scene), "--preset", "sam2unext-test", "--progress", "none", "--overlap", "2"]) == 2
    assert "overlap '2' must be" in capsys.readouterr().err and not calls
