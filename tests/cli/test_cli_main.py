"""Error mapping in ``sam2unext.cli.main.main`` (in-process): exit codes and one-line messages."""

from __future__ import annotations

import signal

from sam2unext.cli import describe
from sam2unext.cli.main import main


def _boom(*args):
    raise RuntimeError("unexpected\nfailure")


def test_internal_error_exits_1_with_one_line_and_traceback_only_with_debug(monkeypatch, capsys):
    monkeypatch.setattr(describe, "table", _boom)  # a bug inside `models`
    assert main(["models"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: internal error: RuntimeError: unexpected failure (rerun with --debug for the traceback)"]

    assert main(["models", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: internal error: RuntimeError")


def test_user_and_usage_errors_exit_2_and_sigterm_handler_is_restored(capsys):
    before = signal.getsignal(signal.SIGTERM)
    assert main(["predict", "missing-scene.tif", "--preset", "sam2unext-test"]) == 2
    assert capsys.readouterr().err.strip() == "error: input raster missing-scene.tif does not exist; check the path"
    assert main(["models", "--no-such-flag"]) == 2
    assert "No such option: --no-such-flag" in capsys.readouterr().err
    assert main(["--help"]) == 0 and "Commands:" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is before
