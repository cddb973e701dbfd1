"""Every fenced ``python`` and ``bash`` block of README.md runs, on the demo scene and weights.

Convention (docs/CONTRACTS.md, "README examples"): a block that cannot run offline is preceded
in README.md by ``<!-- readme-test: skip (reason) -->`` and is reported here as skipped with
that reason. Every other block runs in a fresh folder that holds demo files under the names
the README uses (see :data:`DEMO_FILES`); ``sam2unext-geo`` lines run in-process through the
command's ``main`` (each must exit 0), other shell lines through bash, and python blocks with
``exec`` (``image`` is predefined as an ``H x W x 3`` uint8 array, as the README says).

A few values are changed so that the blocks fit the test budget and a CPU-only machine; they
are listed in :data:`SUBSTITUTIONS`. A ``tcp://`` scheduler address goes to a small local
``dask.distributed`` cluster started for the test. A bbox example must fall inside
:data:`SCENE_BOUNDS`; an example of ``--resume`` needs an interrupted run before it in its block.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP_MARK = re.compile(r"^<!--\s*readme-test:\s*skip\s*\((?P<reason>.*)\)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
TESTED = ("python", "bash")
#: Fence languages that are not code to run (command synopses, output samples).
NOT_CODE = ("", "text")

#: Names the README uses → what stands for them in each block's folder.
DEMO_FILES = {
    "scene.tif": "a 512 x 512 demo scene (EPSG:32633, 0.5 m; 9 tiles of 256 px)",
    "model.safetensors": "the bundled demo weights (sam2unext/weights/demo.safetensors)",
    "tiles/*.tif": "two small demo scenes",
    "s2.tif": "a 4-band uint16 scene at 5 m (so that --bands 4,3,2 and --resolution 10 apply)",
    "aoi.gpkg": "a polygon inside scene.tif (EPSG:32633), for --aoi / aoi=",
    "scene_prob.tif": "the probability raster of scene.tif (only in blocks that run no predict)",
}
#: Inside scene.tif, in its CRS (EPSG:32633): for bbox examples.
SCENE_BOUNDS = (500_000.0, 5_399_744.0, 500_256.0, 5_400_000.0)

_NO_CUDA = not torch.cuda.is_available()
#: (pattern, replacement, why) applied to each block before it runs.
SUBSTITUTIONS = [
    (r"(--device[ =]|device=\")cuda\b", r"\1cpu", "no GPU on the test machine") if _NO_CUDA else None,
    (r"(demo\b.*--size )3072\b", r"\g<1>512", "the documented 3072 px demo takes too long for the suite"),
    (
        r"\bLocalCluster\(",
        "LocalCluster(processes=False, ",
        "worker processes each import torch: minutes on the 2-core test machine (the API path is the same)",
    ),
]
SUBSTITUTIONS = [s for s in SUBSTITUTIONS if s is not None]


@dataclass
class Block:
    """One fenced code block of the README."""

    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    heading: str
    skip: str | None  # the reason of a skip marker, or None

    @property
    def name(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-") or "top"
        return f"L{self.line}-{self.lang}-{slug}"


def readme_blocks(text: str) -> list[Block]:
    """All fenced blocks, with the heading above them and their skip marker, if any."""
    blocks, heading, previous = [], "", ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        fence = FENCE.match(line)
        if fence:
            start, body = i, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            mark = SKIP_MARK.match(previous)
            blocks.append(
                Block(
                    fence["lang"], "\n".join(body) + "\n", start + 1, heading, mark["reason"].strip() if mark else None
                )
            )
        if line.strip():
            previous = line.strip()
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
RUNNABLE = [b for b in BLOCKS if b.lang in TESTED]


def prepared(code: str) -> str:
    """The block with :data:`SUBSTITUTIONS` applied."""
    for pattern, replacement, _why in SUBSTITUTIONS:
        code = re.sub(pattern, replacement, code)
    return code


#: A scheduler address in a block (``--scheduler tcp://host:8786``, ``scheduler="tcp://..."``).
SCHEDULER = re.compile(r"""(--scheduler[ =]|scheduler=["'])tcp://[^\s"']+""")


def with_scheduler(code: str, address: str) -> str:
    """The block with every scheduler address replaced by ``address`` (a local test cluster)."""
    return SCHEDULER.sub(lambda m: m[1] + address, code)


def shell_commands(code: str) -> list[str]:
    """Logical command lines of a shell block (backslash continuations joined, blank lines dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# --- demo files ------------------------------------------------------------------------------


def _write_s2_like(path: Path) -> None:
    """A 4-band uint16 scene (blue, green, red, near-infrared) with 5 m pixels."""
    from sam2unext.geo.demo.demo_scene import generate_scene

    demo = generate_scene(512, seed=5, pixel_size=5.0)
    r, g, b = demo.image.astype(np.uint16) * 16 + 100
    nir = (g // 2 + 900).astype(np.uint16)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=512,
        height=512,
        count=4,
        dtype="uint16",
        crs=demo.crs,
        transform=demo.transform,
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(np.stack([b, g, r, nir]))


def _write_aoi(path: Path) -> None:
    """A quadrilateral well inside scene.tif."""
    import geopandas as gpd
    from shapely.geometry import Polygon

    poly = Polygon([(500_040, 5_399_770), (500_210, 5_399_790), (500_200, 5_399_960), (500_030, 5_399_940)])
    gpd.GeoDataFrame({"name": ["aoi"]}, geometry=[poly], crs="EPSG:32633").to_file(path, driver="GPKG")


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    """The files of :data:`DEMO_FILES`, made once."""
    from sam2unext.geo import predict_raster
    from sam2unext.geo.demo.demo_scene import generate_scene, write_scene

    folder = tmp_path_factory.mktemp("readme_demo")
    weights = Path(__import__("sam2unext").__file__).parent / "weights" / "demo.safetensors"
    shutil.copy(weights, folder / "model.safetensors")
    write_scene(generate_scene(512, seed=2025), folder / "scene.tif")
    with rasterio.open(folder / "scene.tif") as src:
        assert tuple(src.bounds) == SCENE_BOUNDS  # what README bbox examples must fall inside
    (folder / "tiles").mkdir()
    write_scene(generate_scene(320, seed=3), folder / "tiles" / "north.tif")
    write_scene(generate_scene(320, seed=4), folder / "tiles" / "south.tif")
    _write_s2_like(folder / "s2.tif")
    _write_aoi(folder / "aoi.gpkg")
    derived = folder / "derived"
    derived.mkdir()
    shutil.copy(folder / "scene.tif", derived / "scene.tif")
    predict_raster(derived / "scene.tif", checkpoint="demo", device="cpu", progress="none")
    return folder


@pytest.fixture(scope="module")
def cluster_address():
    """A small local ``dask.distributed`` cluster standing in for the README's scheduler addresses."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def block_folder(demo_folder: Path, target: Path, code: str) -> Path:
    """A fresh folder for one block: the inputs, plus the predicted outputs when the block predicts nothing."""
    target.mkdir()
    for name in ("scene.tif", "model.safetensors", "s2.tif", "aoi.gpkg"):
        os.symlink(demo_folder / name, target / name)
    shutil.copytree(demo_folder / "tiles", target / "tiles")
    if "predict" not in code:
        for produced in (demo_folder / "derived").glob("scene_prob*"):
            shutil.copy(produced, target / produced.name)
    return target


def demo_image(demo_folder: Path) -> np.ndarray:
    """``image`` of the README's Python block: a 256 x 256 window of the scene, ``H x W x 3`` uint8."""
    with rasterio.open(demo_folder / "scene.tif") as src:
        return src.read(window=rasterio.windows.Window(0, 0, 256, 256)).transpose(1, 2, 0)


# --- runners ---------------------------------------------------------------------------------


def run_shell(code: str, folder: Path, capfd) -> None:
    from sam2unext.cli.main import main

    env_bin = str(Path(sys.executable).parent)
    for command in shell_commands(code):
        argv = shlex.split(command, comments=True)
        if not argv:
            continue
        if argv[0] == "sam2unext-geo":
            rc = main(argv[1:])
            out, err = capfd.readouterr()
            assert rc == 0, f"`{command}` exited {rc}:\n{err[-3000:]}"
        else:
            env = dict(os.environ, PATH=env_bin + os.pathsep + os.environ.get("PATH", ""))
            done = subprocess.run(
                ["bash", "-ec", command], cwd=folder, env=env, capture_output=True, text=True, timeout=300
            )
            assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{done.stderr[-3000:]}"


def run_python(code: str, image: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace = {"__name__": "__readme__", "image": image}
    try:
        exec(compile(code, str(README), "exec"), namespace)
    finally:
        plt.close("all")


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.name for b in RUNNABLE])
def test_readme_block_runs(block: Block, demo_folder, tmp_path, monkeypatch, capfd, request):
    if block.skip is not None:
        pytest.skip(f"README block {block.name}: {block.skip}")
    code = prepared(block.code)
    if SCHEDULER.search(code):
        code = with_scheduler(code, request.getfixturevalue("cluster_address"))
    folder = block_folder(demo_folder, tmp_path / "work", code)
    monkeypatch.chdir(folder)
    if block.lang == "bash":
        syntax = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
        assert syntax.returncode == 0, f"bash syntax error in {block.name}: {syntax.stderr}"
        run_shell(code, folder, capfd)
    else:
        run_python(code, demo_image(demo_folder))


def test_skip_markers_sit_on_tested_blocks_and_say_why():
    text = README.read_text(encoding="utf-8").splitlines()
    marked = [i for i, line in enumerate(text, start=1) if "readme-test" in line]
    on_blocks = {b.line for b in RUNNABLE if b.skip is not None}
    for line_no in marked:
        mark = SKIP_MARK.match(text[line_no - 1].strip())
        assert mark and mark["reason"].strip(), f"README line {line_no}: write <!-- readme-test: skip (reason) -->"
        following = next(n for n in range(line_no + 1, len(text) + 1) if text[n - 1].strip())
        assert following in on_blocks, f"README line {line_no}: the skip marker is not right above a python/bash block"


def test_scheduler_addresses_go_to_the_test_cluster():
    code = 'sam2unext-geo predict a.tif --scheduler tcp://sched:8786 -o x/\npredict_raster("a.tif", scheduler="tcp://10.0.0.1:8786")\n'
    assert with_scheduler(code, "inproc://1.2.3/4") == (
        'sam2unext-geo predict a.tif --scheduler inproc://1.2.3/4 -o x/\npredict_raster("a.tif", scheduler="inproc://1.2.3/4")\n'
    )


def test_code_blocks_are_python_bash_or_plain():
    others = [b.name for b in BLOCKS if b.lang not in TESTED + NOT_CODE]
    assert not others, f"README blocks in a language this test does not run: {others}; use python or bash"


def test_the_api_and_command_examples_are_not_skipped():
    ran = [b for b in RUNNABLE if b.skip is None]
    assert any(b.lang == "python" for b in ran), "the README's Python API example must run"
    assert any("sam2unext-geo predict" in b.code for b in ran), "a README predict example must run"
