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
from typing import Any

from .conftest import ROOT, MemorySink, write_call

WRITE = write_call()


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


def test_what_an_application_holds_behaves_alike_in_both_builds(bundle: Path) -> None:
    """Classes an application keeps, copies, shares or weakly references stay Python classes (frozen.python_class)."""
    import copy
    import io
    import pickle
    import weakref

    from veto_crm import InMemoryStore, JsonLinesRecordSink, VetoOptionsError, create_veto
    from veto_crm.decision import AmendedCall
    from veto_crm.input import InputLimits
    from veto_crm.store import Amendment
    from veto_crm.veto import ResumedAmendment, ResumedCall

    limits = InputLimits(max_input_bytes=1000, max_depth=5)
    assert copy.deepcopy(limits) == limits and pickle.loads(pickle.dumps(limits)) == limits
    resumed = ResumedCall("d1", {"tool": "crm.update", "arguments": {}, "context": {}}, None)
    assert copy.deepcopy(resumed) == resumed and pickle.loads(pickle.dumps(resumed)) == resumed
    for cls in (AmendedCall, Amendment, ResumedAmendment):
        assert not hasattr(cls, "__mypyc_attrs__"), cls
    # One sink shared by two instances on one store: an approval given through one backs the other's wait.
    sink = JsonLinesRecordSink(io.StringIO())
    assert weakref.ref(sink)() is sink
    store = InMemoryStore()
    a = create_veto(bundle, store=store, record_sink=sink)
    b = create_veto(bundle, store=store, record_sink=sink)
    pending = a.protect({**WRITE, "arguments": {**WRITE["arguments"], "amount": 250_000}})
    assert pending.action == "require_approval"
    b.approve(pending.id, pending.approvers[0])
    assert a.wait_for_approval(pending.id, timeout_ms=0).status == "approved"
    # Limits from configuration: whole positive numbers, max_depth at most 256, refused by name otherwise.
    bad: Any
    for bad in ({"max_input_bytes": 65536.0}, {"max_depth": "12"}, {"max_depth": True}, {"max_depth": 10_000}, {"max_depth": 0}):
        try:
            create_veto(bundle, record_sink=MemorySink(), limits=bad)
            raise AssertionError(f"accepted {bad}")
        except VetoOptionsError as error:
            assert "limits.max" in str(error), bad


def test_a_keys_own_methods_decide_nothing_and_text_from_outside_is_refused_not_raised(bundle: Path) -> None:
    """A str subclass key is the plain str it holds (its lower() cannot hide a sensitive field); protect_text's text is checked, not trusted."""

    from veto_crm import create_veto

    class Sly(str):
        def lower(self) -> str:
            return "harmless"

    sink = MemorySink()
    veto = create_veto(bundle, record_sink=sink)
    call = {**WRITE, "arguments": {**WRITE["arguments"], "changes": {Sly("ssn"): "123-45-6789"}}}
    decided = veto.protect(call)
    assert decided.action == "require_approval" and [r.code for r in decided.reasons] == ["sensitive_field"]
    record = sink.records[-1]
    assert "/input/arguments/changes/ssn" in record["masked"] and "123-45-6789" not in json.dumps(record)
    for text in (b'{"tool": "crm.update"}', 5, ["not text"]):
        denied = veto.protect_text(WRITE, text)
        assert denied.action == "deny" and [r.code for r in denied.reasons] == ["invalid_input"], text
        assert sink.records[-1]["decision_id"] == denied.id
