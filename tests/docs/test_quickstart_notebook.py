"""``examples/quickstart.ipynb`` runs top to bottom in a real Jupyter kernel, quietly.

The notebook is committed with its outputs. To refresh them after a change::

    SAM2UNEXT_UPDATE_NOTEBOOK=1 python -m pytest tests/docs/test_quickstart_notebook.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return str(output.get("data", {}).get("text/plain", "")) + str(output.get("ename", ""))


def _noise(output) -> str:
    """stderr text that is not one of our own ``warning: ...`` lines (Progress.warning): library
    warnings, log lines, tracebacks and text progress bars all arrive there."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return ""
    return "".join(
        line for line in output.get("text", "").splitlines(keepends=True) if not line.startswith("warning: ")
    )


def _outputs(nb, needle: str) -> list:
    """Outputs of the one code cell whose source contains ``needle``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and needle in c.source]
    assert len(cells) == 1, f"expected one cell with {needle!r}, found {len(cells)}"
    return cells[0].outputs


def _notebook_extra() -> tuple:
    """``nbformat`` and ``nbclient``, imported when a test needs them (not at collection: two
    seconds in each pytest-xdist worker); the tests skip when the [notebook] extra is missing."""
    reason = "the [notebook] extra is not installed"
    return pytest.importorskip("nbformat", reason=reason), pytest.importorskip("nbclient", reason=reason)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook executed in a fresh folder (its outputs land there)."""
    nbformat, nbclient = _notebook_extra()
    folder = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()
    if os.environ.get("SAM2UNEXT_UPDATE_NOTEBOOK") == "1":
        nbformat.write(_without_widgets(nb), NOTEBOOK)
    return nb, folder


def _without_widgets(nb):
    """A copy without the progress-bar widgets: hidden once done, they only bloat the committed file."""
    nbformat, _ = _notebook_extra()
    nb = nbformat.from_dict(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                o for o in cell.outputs if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})
            ]
    return nb


def test_every_cell_runs_and_only_our_warnings_go_to_stderr(executed):
    nb, _ = executed
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            assert out.output_type != "error", f"cell failed:\n{cell.source}\n{_text(out)}"
            assert not _noise(out), f"stderr output in cell:\n{cell.source}\n---\n{out.text}"


def test_covers_the_api_and_shows_the_results(executed):
    nb, folder = executed
    described = "".join(_text(o) for o in _outputs(nb, "describe_raster(scene"))
    assert "'crs': 'EPSG:32633'" in described and "'tiles'" in described
    predicted = "".join(_text(o) for o in _outputs(nb, "res = predict_raster("))
    assert "tiles in" in predicted and "polygons" in predicted
    assert any("image/png" in o.get("data", {}) for o in _outputs(nb, "prob.plot.imshow"))
    assert any("<table" in o.get("data", {}).get("text/html", "") for o in _outputs(nb, "geodataframe.head()"))
    assert any("folium" in o.get("data", {}).get("text/html", "") for o in _outputs(nb, ".explore("))
    looks = _outputs(nb, "res.quicklook(")
    assert sum("image/png" in o.get("data", {}) for o in looks) == 1, "the quick-look is shown once"
    assert (folder / "quickstart_out" / "demo_quicklook.png").stat().st_size > 10_000
    assert "threshold 0.8" in "".join(_text(o) for o in _outputs(nb, "vectorize_raster("))
    assert "float32" in "".join(_text(o) for o in _outputs(nb, "model.predict(image)"))
    cluster = "".join(_text(o) for o in _outputs(nb, "LocalCluster("))
    assert "tiles on the cluster" in cluster and "largest difference from the local run" in cluster
    assert (folder / "quickstart_out" / "demo_scene_prob_cluster.tif").exists()


def test_committed_notebook_has_its_outputs():
    nbformat, _ = _notebook_extra()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "run the notebook and commit it with its outputs"
    assert all(c.outputs for c in code), "every code cell of the committed notebook shows something"
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error"
            assert not _noise(out), cell.source
