"""
The compiled build of veto-crm: with VETO_CRM_COMPILE=1, a wheel's hot-path
modules (COMPILED) are compiled to C extensions by mypyc (from mypy, which must
be installed where the wheel is built: `pip wheel --no-build-isolation`, as
scripts/python-compiled.sh does), beside the same modules' Python source.
Python imports an extension before a source file of the same name, so the
wheel runs the compiled modules and everything else as Python. Without the
variable (and for an editable install) the wheel is pure Python, as before.

The same source is both builds, and `make test` runs the whole Python suite
against each. What mypyc asks of that source is written where it applies: no
surrogates in string literals (jsontext.py), the runtime-checkable protocol in
a module it does not compile (sinks.py), no weak references to compiled
classes (ids.py), and recursion over caller-given values counted rather than
left to Python's recursion limit, which compiled calls do not check
(jsontext.py, records.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: The modules a decision runs through (BENCHMARKS.md, "Python": what compiling them bought); store.py's
#: InMemoryStore allows Python subclasses (applications and tests make them). Not compiled:
#: evaluator.py (its direct path is replaced in tests by patching the module,
#: which compiled code would not see), factory.py (create_veto's checks must see the options first).
COMPILED = (
    "call_schema",
    "decision",
    "evidence",
    "ids",
    "input",
    "jsontext",
    "records",
    "store",
    "text",
    "unit",
    "veto",
)


class CompiledBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable" or os.environ.get("VETO_CRM_COMPILE") != "1":
            return
        work = Path(tempfile.mkdtemp(prefix="veto-crm-mypyc-"))
        self._work = work
        try:
            # mypyc writes its C files, its build folder and the extensions beside the modules: in a copy,
            # type-checked with the project's own mypy settings.
            shutil.copytree(Path(self.root) / "veto_crm", work / "veto_crm")
            config = str(Path(self.root) / "pyproject.toml")
            modules = [f"veto_crm/{name}.py" for name in COMPILED]
            run = subprocess.run(
                [sys.executable, "-m", "mypyc", "--config-file", config, *modules],
                cwd=work,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            if run.returncode != 0:
                # mypyc prints its type errors and the compiler's on standard output.
                sys.stderr.write(run.stdout[-20_000:])
                raise RuntimeError(f"mypyc failed ({run.returncode}): the compiled build needs mypy, a C compiler and Python's headers")
        except BaseException:
            # hatchling calls finalize only after a successful initialize.
            shutil.rmtree(work, ignore_errors=True)
            raise
        built = sorted(p for p in work.rglob("*.so") if "build" not in p.relative_to(work).parts)
        names = {p.name.split(".", 1)[0] for p in built if p.parent.name == "veto_crm"}
        missing = set(COMPILED) - names
        if missing:
            raise RuntimeError(f"mypyc built no extension for {sorted(missing)}")
        for path in built:
            build_data["force_include"][str(path)] = str(path.relative_to(work))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
