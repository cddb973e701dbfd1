"""How the suite is split over pytest-xdist workers (``-n 2`` in pyproject.toml's addopts).

A work unit is a test file, except ``tests/qgis/``, which is one unit: its files share the
plugin zip (built once per worker that needs it) and the QGIS run must not be split. Units
start heaviest first (:data:`HEAVY_FIRST`, measured with ``--durations``), so that no long
unit is left to run alone at the end; the others follow in collection order.
"""

from __future__ import annotations

import os

import pytest

# Idle OpenMP threads of torch sleep instead of spinning. Two workers of two torch threads each
# share two cores, and spinning threads burn the time their partners need: measured on
# tests/model + test_train_loop.py with -n 2, 90-133 s wall without this, 44-48 s with it.
# Set before any test module imports torch; workers and subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: Units that take longest on the 2-core CI machine, started first (seconds with -n 2, measured
#: at 2026-11-29). This order ended both workers within 1-3 s of each other; strictly longest
#: first measured no better.
HEAVY_FIRST = (
    "tests/qgis",  # ~33 s: one QGIS process runs the plugin checks, two real predict runs among them
    "tests/training/test_multispectral_finetune.py",  # ~17 s: two short fine-tunings
    "tests/docs/test_quickstart_notebook.py",  # ~18 s: a Jupyter kernel runs the notebook
    "tests/docs/test_readme_examples.py",  # ~12 s
    "tests/geo/test_distributed.py",  # ~20 s: a two-process LocalCluster
    "tests/cli/test_cli_refusals.py",  # ~16 s: two real processes stopped by signals
    "tests/geo/test_chunked_runs.py",  # ~21 s
)


def work_unit(nodeid: str) -> str:
    """The work unit of a test: ``tests/qgis`` for the QGIS folder, else its file."""
    path = nodeid.split("::", 1)[0]
    return "tests/qgis" if path.startswith("tests/qgis/") else path


def _rank(nodeid: str) -> int:
    unit = work_unit(nodeid)
    return HEAVY_FIRST.index(unit) if unit in HEAVY_FIRST else len(HEAVY_FIRST)


_NICED: list[bool] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    """With two workers, the one that runs other tests than tests/qgis runs at nice 10.

    The QGIS plugin starts the real sam2unext-geo at nice 10 (it must not slow the QGIS
    desktop); beside a worker at nice 0 those runs got about a tenth of a core, and the QGIS
    unit took twice as long. At equal niceness they share the cores evenly, and QGIS's own
    GUI thread (nice 0) stays ahead of both, as on a user's desktop.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") and not _NICED and work_unit(item.nodeid) != "tests/qgis":
        os.nice(10)
        _NICED.append(True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Heaviest units first; the order inside a unit, and of the other units, is kept."""
    items.sort(key=lambda item: _rank(item.nodeid))


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown when xdist is not installed
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Whole units to one worker each, handed out in collection order (heaviest first)."""
    if config.getoption("dist", None) != "load":
        return None  # an explicit --dist mode keeps xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the heaviest-first order of the collection
    return UnitScheduling(config, log)
