"""Run a benchmark function on an earlier commit of Galaxy, in the same run as the current code.

Why not compare with a figure from an older run: this machine is shared and noisy, so only ratios
measured side by side mean anything. ``BaselineCheckout(commit)`` makes a git worktree of that commit
and a virtualenv whose interpreter imports Galaxy (and ``bench``) from the worktree and every other
dependency from this checkout's ``.venv``; each daemon, Agent, zygote and AppWorker that a
LocalCluster starts from that interpreter (``sys.executable``) then runs the old code, the old
container set-up included. ``call(module, function, *args)`` runs ``module.function(*args)`` there
and returns its ``repr``-able result.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class BaselineCheckout:
    def __init__(self, commit: str) -> None:
        self.commit = commit
        self.dir = Path(tempfile.mkdtemp(prefix="galaxy-bench-baseline-"))
        self.tree = self.dir / "tree"
        self.venv = self.dir / "venv"

    def __enter__(self) -> BaselineCheckout:
        try:
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(self.tree),
                            self.commit], check=True, capture_output=True)
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(self.venv)], check=True)
            purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                     check=True, capture_output=True, text=True).stdout.strip()
            # The old tree first, then this venv's dependencies (not its editable Galaxy: a .pth in a
            # plain path entry is not read, only one in a site dir like this one).
            Path(purelib, "galaxy-baseline.pth").write_text(f"{self.tree}\n{sysconfig.get_path('purelib')}\n")
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def call(self, module: str, function: str, *args: str, timeout: float = 600.0) -> Any:
        script = (f"import sys\nfrom {module} import {function}\n"
                  f"print(repr({function}(*[__import__('pathlib').Path(a) for a in sys.argv[1:]])))")
        done = subprocess.run([str(self.python), "-c", script, *args], cwd=self.tree, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"baseline {self.commit} {module}.{function} failed: {done.stderr[-2000:]}")
        return ast.literal_eval(done.stdout.strip().splitlines()[-1])

    def __exit__(self, *_exc: object) -> None:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(self.tree)],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
