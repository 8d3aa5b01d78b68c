"""
The two builds of veto-crm (hatch_build.py): `make test` runs this suite
once on the editable, pure Python install and once on the compiled wheel
(PYTHONPATH=.build/pyc, VETO_CRM_EXPECT_COMPILED=1). The first test says which
build the run is on, so a compiled run that silently imported Python source
fails. The second holds the compiled build to what Python's recursion limit
gave the pure one: compiled calls are not stopped by that limit, so a value
nested without end (a cycle) or very deep, given as a call, must still get a
deny with invalid_input and a record, not overflow the C stack. It runs in a
process of its own, where a crash is a failed test rather than a lost run.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def _compiled_modules() -> tuple[str, ...]:
    """hatch_build.COMPILED, loaded from its file (adding adapter/python to sys.path would put the source first)."""
    spec = importlib.util.spec_from_file_location("veto_crm_hatch_build", ROOT / "adapter/python/hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.COMPILED)


COMPILED = _compiled_modules()
EXPECT_COMPILED = os.environ.get("VETO_CRM_EXPECT_COMPILED") == "1"


def test_the_run_is_on_the_build_it_says() -> None:
    for name in COMPILED:
        module = importlib.import_module(f"veto_crm.{name}")
        where = Path(module.__file__ or "")
        assert where.suffix == (".so" if EXPECT_COMPILED else ".py"), f"veto_crm.{name} from {where}"
    # Everything else is Python in both builds (the protocol class mypyc cannot compile among it).
    sinks = importlib.import_module("veto_crm.sinks")
    assert Path(sinks.__file__ or "").suffix == ".py"


HOSTILE = r"""
import json, sys
from veto_crm import create_veto
from veto_crm.jsontext import canonical

class Sink:
    def __init__(self): self.records = []
    def write(self, record): self.records.append(record)

deep_list = []
inner = deep_list
for _ in range(100_000):
    inner.append([])
    inner = inner[0]
cyclic = {"tool": "crm.update"}
cyclic["arguments"] = cyclic
deep_dict = {"tool": "crm.update", "arguments": {}, "context": {}}
node = deep_dict["arguments"]
for _ in range(50_000):
    node["x"] = {"n": float("nan")}
    node = node["x"]

sink = Sink()
veto = create_veto(sys.argv[1], record_sink=sink)
out = []
for call in (deep_list, cyclic, deep_dict, {"tool": "crm.update", "arguments": deep_list, "context": {}}):
    d = veto.protect(call)
    out.append([d.action, [r.code for r in d.reasons], sink.records[-1]["decision_id"] == d.id])
# The canonical writer gives the same text past the depth it recurses to.
nested = [[[[[[["x"]]]]]]]
for _ in range(1000):
    nested = [nested]
out.append(canonical(nested) == "[" * 1007 + '"x"' + "]" * 1007)
import veto_crm.veto
out.append(veto_crm.veto.__file__.endswith(".so"))
print(json.dumps(out))
"""


def test_endless_or_very_deep_calls_are_denied_not_a_crash(bundle: Path) -> None:
    # From the repository's root: run from adapter/python, "-c" would import the source beside it.
    run = subprocess.run([sys.executable, "-c", HOSTILE, str(bundle)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    *decisions, same_text, compiled = json.loads(run.stdout)
    assert compiled is EXPECT_COMPILED
    assert decisions == [["deny", ["invalid_input"], True]] * 4
    assert same_text is True
