"""``info``, ``models``, ``--help`` and ``--version``."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from cli_helpers import run_cli

COMMANDS = ["predict", "vectorize", "info", "models", "demo", "train", "test", "evaluate"]


def test_info_reports_bands_stretch_tiles_and_measured_time(scene):
    res = run_cli("info", scene, "--preset", "sam2unext-test", "--device", "cpu", "--json")
    assert res.returncode == 0, res.stderr
    facts = json.loads(res.stdout)
    assert (facts["width"], facts["height"], facts["count"]) == (384, 384, 3)
    assert facts["crs"] == "EPSG:32633" and facts["dtypes"] == ["uint8"] * 3
    assert facts["bands_used"] == [1, 2, 3] and facts["stretch"] is None
    assert facts["tile_size"] == 256 and facts["tiles"] == 4
    assert facts["seconds_per_tile"] > 0 and facts["estimated_seconds"] == pytest.approx(4 * facts["seconds_per_tile"])

    text = run_cli("info", scene, "--tile-size", "128")
    assert text.returncode == 0, text.stderr
    assert "tiles:       16 of 128 px" in text.stdout and "EPSG:32633" in text.stdout


def test_models_lists_presets_and_their_weight_files():
    res = run_cli("models", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["preset"]: r for r in json.loads(res.stdout)}
    assert {"sam2unext-large", "sam2unet-large", "sam2unext-test", "sam2unet-test"} <= set(rows)
    large = rows["sam2unext-large"]
    assert large["sam2_weights"] == "sam2_hiera_large.pt" and "vit_large_patch14_dinov2" in large["dinov2_weights"]
    assert (large["input"], large["low_res"]) == (1024, 448) and large["parameters_m"] > 100
    assert rows["sam2unet-large"]["low_res"] is None
    assert rows["demo (--checkpoint demo)"]["input"] == 256
    assert rows["sam2unext-tiny"]["parameters_m"] == 51.44  # the paper's 51 M T+S variant


def test_models_needs_no_torch():
    """The plugin's Check runs ``models``: it prints the table without importing torch or timm."""
    code = (
        "import contextlib, io, sys\n"
        "from sam2unext.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    code = main(['models'])\n"
        "print(code, 'sam2unext-large' in out.getvalue(), 'torch' in sys.modules, 'timm' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.split() == ["0", "True", "False", "False"], res.stdout + res.stderr


def _command(name: str):
    """The click command behind ``sam2unext-geo NAME``."""
    import typer

    from sam2unext.cli.main import app

    return typer.main.get_command(app).commands[name]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_documents_its_options_and_examples_that_parse(command):
    import click

    res = run_cli(command, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage: sam2unext-geo " + command in res.stdout
    cmd = _command(command)
    options = [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden]
    for opt in options:  # every option is listed, with a description
        assert all(name in res.stdout for name in opt.opts), (opt.name, res.stdout)
        assert opt.help, f"{command} {opt.opts[0]} has no help text"

    text = res.stdout.replace("\\\n", " ")  # examples continued over lines with a backslash
    examples = [line.strip() for line in text.splitlines() if line.strip().startswith(f"sam2unext-geo {command}")]
    assert examples, res.stdout
    for line in examples:  # each example is a command line that this command accepts
        args = shlex.split(line)[2:]
        cmd.make_context(command, args, resilient_parsing=False)


def test_version_and_bare_command():
    assert run_cli("--version").stdout.startswith("sam2unext-geo ")
    bare = run_cli()
    assert bare.returncode == 2 and "Commands:" in bare.stderr
