"""Bill-computing workers start without importing the caller's main module."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

MAIN = textwrap.dedent(
    """
    import os
    import sys
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from ledger.billing.issuing import _main_module_hidden_from_workers

    if __name__ == "__mp_main__":
        # What a spawned worker does when it imports this main module: leave a mark.
        open(os.environ["MARK"], "a").write("imported\\n")

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn"))
        if sys.argv[1] == "hidden":
            with _main_module_hidden_from_workers():
                results = pool.map(abs, [-1, -2, -3])
        else:
            results = pool.map(abs, [-1, -2, -3])
        assert list(results) == [1, 2, 3]
        pool.shutdown()
        assert __file__ and __spec__ is None  # restored for the rest of the program
    """
)


def _run(tmp_path: Path, mode: str) -> str:
    script = tmp_path / "caller.py"
    script.write_text(MAIN)
    mark = tmp_path / f"mark-{mode}"
    mark.touch()
    subprocess.run(
        [sys.executable, str(script), mode],
        check=True,
        env={"MARK": str(mark), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[3],
        timeout=60,
    )
    return mark.read_text()


def test_workers_started_inside_do_not_import_the_callers_main_module(tmp_path: Path) -> None:
    assert _run(tmp_path, "hidden") == ""


def test_workers_started_outside_import_the_callers_main_module(tmp_path: Path) -> None:
    # The control: what the function prevents does happen without it.
    assert _run(tmp_path, "plain").count("imported") == 2
