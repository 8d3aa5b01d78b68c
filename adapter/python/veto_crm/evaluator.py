"""
In-process evaluation of the bundle's WASM module through OPA's WASM ABI,
with wasmtime, as the TypeScript adapter does it through the JS SDK
(adapter/evaluator.ts, @open-policy-agent/opa-wasm's LoadedPolicy):

- instantiate with the host imports the module asks for: ``env.memory``
  (made here, sized for the data document, growth capped), ``opa_abort``
  (raises the module's message), ``opa_println`` and ``opa_builtin0..4``;
- the same calls in the same order as the SDK's loadPolicy + setData:
  ``builtins()`` dumped, ``{}`` loaded as data, the heap pointer remembered,
  ``entrypoints()`` dumped, then the data document loaded at that pointer;
- once the data document is loaded, the values the policy derives from it
  alone (``veto/crm/derived``) evaluated once and stored at data.veto.derived,
  as the TypeScript adapter does (adapter/policy/evaluator.ts, storeDerived);
- evaluation through ABI 1.2's ``opa_eval`` (input written just past the
  data, heap right after the input), or for an older module the classic
  ``opa_heap_ptr_set / opa_json_parse / eval / opa_json_dump`` flow;
- the answer checked against the decision's shape; any failure is an
  Evaluation with ok False, never an exception, and after a failure that may
  have damaged the instance the next evaluation starts from a new instance
  (the input parser's own refusals excepted: opa_eval starts from a fresh
  heap, as in the TypeScript adapter).

Built-in functions: the bundle is compiled against capabilities that allow
only the builtins OPA's WASM target implements natively (none reaches the
host). The JS SDK implements a few in JavaScript (sprintf, json, regex,
yaml); none is implemented here, so a module that calls a host builtin fails
closed: that evaluation is an evaluation_error naming the builtin, worded as
the SDK words its own "not implemented" error.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import re
import struct
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import wasmtime

from .bundle import DECISION_ENTRYPOINT, DERIVED_ENTRYPOINT
from .decision import PolicyAnswer, Reason
from .errors import BundleLoadError
from .jsontext import JsonParseError, parse, stringify
from .frozen import fast_init

PAGE = 64 * 1024
MIN_PAGES = 16
EVALUATION_PAGES = 4096
#: How many distinct answer texts an evaluator keeps read (PolicyEvaluator._answers); past it they are read again.
ANSWERS_KEPT = 512
MAX_PAGES = 65536

#: What the module's JSON parser aborts with when the input text is not JSON it accepts.
INPUT_PARSE_ABORTS = frozenset({"illegal string escape character", "illegal unescaped character"})


class WasmAbort(Exception):
    """The module called opa_abort; the message is the module's (the JS SDK throws it as a string)."""


class _BuiltinNotImplemented(Exception):
    pass


def memory_pages_for(data_bytes: int) -> tuple[int, int]:
    """Initial and maximum pages: room for the parsed data document (about ten times its JSON), growth capped."""
    initial = min(MAX_PAGES - EVALUATION_PAGES, MIN_PAGES + math.ceil(data_bytes * 12 / PAGE))
    return initial, max(EVALUATION_PAGES, initial + EVALUATION_PAGES)


@fast_init
@dataclass(frozen=True)
class Evaluation:
    ok: bool
    eval_ns: int
    answer: Optional[PolicyAnswer] = None
    error: Optional[str] = None


#: opa_eval's type: seven i32 parameters, one i32 result.
_OPA_EVAL_ARITY = 7
#: Bytes of one wasmtime_val_raw_t (a union of i32, i64, f32, f64, v128 and references).
_VAL_RAW_BYTES = 16
#: opa_eval's seven arguments, each an i32 at the start of its wasmtime_val_raw_t (little-endian, as every host
#: wasmtime runs on); the result is written over the first.
_ARGS = struct.Struct("<" + f"I{_VAL_RAW_BYTES - 4}x" * _OPA_EVAL_ARITY)
_RESULT = struct.Struct("<i")


class _DirectEval:
    """
    opa_eval called through wasmtime's C API as directly as ctypes allows:
    ``wasmtime_func_call_unchecked`` on an argument buffer made once (the
    function's type, seven i32 in and one out, is checked here, once, instead
    of on every call as ``Func.__call__`` and ``wasmtime_func_call`` do),
    through function pointers that take plain addresses (no ctypes object is
    made per call), and the module's memory read and written through its base
    address. A trap or error is raised as ``Func.__call__`` raises it (a
    Python exception raised by a host function, such as opa_abort's WasmAbort,
    first). Uses wasmtime-py internals, so it is checked when made and, when
    anything is not as expected (another wasmtime version), not used: the
    public API does the same work more slowly.
    """

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, memory: wasmtime.Memory) -> None:
        from wasmtime import _ffi as ffi
        from wasmtime import _func as func_module

        ty = func.type(store)
        if [str(t) for t in ty.params] != ["i32"] * _OPA_EVAL_ARITY or [str(t) for t in ty.results] != ["i32"]:
            raise TypeError("opa_eval does not have the type (i32 x 7) -> i32")
        if ctypes.sizeof(ffi.wasmtime_val_raw_t) != _VAL_RAW_BYTES or sys.byteorder != "little":
            raise TypeError("wasmtime_val_raw_t is not as expected")
        pointer = ctypes.c_void_p

        def entry(name: str, restype: Any, *argtypes: Any) -> Any:
            address = ctypes.cast(getattr(ffi.dll, name), pointer).value
            if not address:
                raise AttributeError(name)
            return ctypes.CFUNCTYPE(restype, *argtypes)(address)

        self._ffi: Any = ffi
        self._last_exception: Any = func_module.maybe_raise_last_exn
        self._call: Any = entry("wasmtime_func_call_unchecked", pointer, pointer, pointer, pointer, ctypes.c_size_t, pointer)
        self._data: Any = entry("wasmtime_memory_data", pointer, pointer, pointer)
        self._data_size: Any = entry("wasmtime_memory_data_size", ctypes.c_size_t, pointer, pointer)
        # The store, function and memory outlive this object (the _Instance holds them); their addresses are kept.
        self._store = store
        self._func = func
        self._memory = memory
        self._context = ctypes.cast(store._context(), pointer).value
        self._func_address = ctypes.addressof(func._func)
        self._memory_address = ctypes.addressof(memory._memory)
        self._args = (ctypes.c_uint8 * (_VAL_RAW_BYTES * _OPA_EVAL_ARITY))()
        self._args_address = ctypes.addressof(self._args)
        self._trap = pointer()
        self._trap_address = ctypes.addressof(self._trap)
        self._base = 0
        self._size = -1
        #: The memory's bytes as of the last refresh (None before the first).
        self.view: Optional[memoryview] = None

    def refresh(self) -> memoryview:
        """The module's memory as bytes, made again when its size changed (it moves only when it grows)."""
        size = self._data_size(self._context, self._memory_address)
        view = self.view
        if view is None or size != self._size:
            base, size = self.base_and_size()
            view = self.view = memoryview((ctypes.c_char * size).from_address(base)).cast("B") if base and size else memoryview(b"")
        return view

    def base_and_size(self) -> tuple[int, int]:
        size = self._data_size(self._context, self._memory_address)
        # A memory moves only when it grows, and growing changes its size: the base is asked again only then.
        if size != self._size:
            self._base = self._data(self._context, self._memory_address) or 0
            self._size = size
        return self._base, size

    def call(self, *args: int) -> int:
        _ARGS.pack_into(self._args, 0, *args)
        trap = self._trap
        trap.value = None
        error = self._call(self._context, self._func_address, self._args_address, _OPA_EVAL_ARITY, self._trap_address)
        if error or trap.value:
            self._raise(error, trap.value)
        return int(_RESULT.unpack_from(self._args)[0])

    def _raise(self, error: Optional[int], trap: Optional[int]) -> None:
        """What wasmtime's enter_wasm raises: a host function's own exception first, then the trap or the error."""
        ffi = self._ffi
        if trap:
            trap_object = wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(ffi.wasm_trap_t)))
            self._last_exception()
            raise trap_object
        self._last_exception()
        raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error or 0, ctypes.POINTER(ffi.wasmtime_error_t)))


class _Instance:
    """One instance of the module with the data document loaded (the SDK's LoadedPolicy)."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module, data_json: bytes) -> None:
        self.store = wasmtime.Store(engine)
        initial, maximum = memory_pages_for(len(data_json))
        self.memory = wasmtime.Memory(self.store, wasmtime.MemoryType(wasmtime.Limits(initial, maximum)))
        self.builtins: dict[int, str] = {}
        imports: list[Any] = []
        for item in module.imports:
            if item.module != "env":
                raise ValueError(f"the module imports {item.module}.{item.name}, which no OPA policy needs")
            imports.append(self._import(item.name or ""))
        self.instance = wasmtime.Instance(self.store, module, imports)
        exports = self.instance.exports(self.store)

        def func(name: str) -> wasmtime.Func:
            value = exports.get(name)
            if not isinstance(value, wasmtime.Func):
                raise ValueError(f"the module does not export the function {name}")
            return value

        def global_value(name: str) -> Optional[int]:
            value = exports.get(name)
            return value.value(self.store) if isinstance(value, wasmtime.Global) else None

        abi = global_value("opa_wasm_abi_version")
        if abi is not None and abi != 1:
            raise ValueError(f"unsupported ABI version {abi}")
        self.minor = global_value("opa_wasm_abi_minor_version") or 0
        self.opa_malloc = func("opa_malloc")
        self.opa_json_parse = func("opa_json_parse")
        self.opa_json_dump = func("opa_json_dump")
        self.opa_heap_ptr_get = func("opa_heap_ptr_get")
        self.opa_heap_ptr_set = func("opa_heap_ptr_set")
        self.opa_eval = func("opa_eval") if self.minor >= 2 else None
        self.direct: Optional[_DirectEval] = None
        if self.opa_eval is not None:
            try:
                self.direct = _DirectEval(self.store, self.opa_eval, self.memory)
            except (ImportError, AttributeError, TypeError):
                self.direct = None
        builtins = self._dump(func("builtins")(self.store))
        if isinstance(builtins, dict):
            self.builtins = {int(v): str(k) for k, v in builtins.items()}
        self.data_addr = self._load_json(b"{}")
        self.base_heap = int(self.opa_heap_ptr_get(self.store))
        self.data_heap = self.base_heap
        entrypoints = self._dump(func("entrypoints")(self.store))
        self.entrypoints: dict[str, int] = entrypoints if isinstance(entrypoints, dict) else {}
        self.classic = None if self.opa_eval is not None else (
            func("opa_eval_ctx_new"),
            func("opa_eval_ctx_set_input"),
            func("opa_eval_ctx_set_data"),
            func("opa_eval_ctx_set_entrypoint"),
            func("eval"),
            func("opa_eval_ctx_get_result"),
        )
        # setData
        self.opa_heap_ptr_set(self.store, self.base_heap)
        self.data_addr = self._load_json(data_json)
        self.data_heap = int(self.opa_heap_ptr_get(self.store))
        self.derived_stored = self._store_derived(exports)

    def _store_derived(self, exports: Any) -> bool:
        """
        Evaluate ``veto/crm/derived`` once on the data document just loaded and store the value at
        data.veto.derived, whatever the document held there removed first (policy/veto/crm/derived.rego;
        the same steps as storeDerived in adapter/policy/evaluator.ts). Returns whether a value was stored;
        without one the policy derives the same values on each call. Raises when the module fails.
        """
        add_path = exports.get("opa_value_add_path")
        remove_path = exports.get("opa_value_remove_path")
        if self.opa_eval is None or not isinstance(add_path, wasmtime.Func) or not isinstance(remove_path, wasmtime.Func):
            return False
        self.opa_heap_ptr_set(self.store, self.data_heap)
        path = self._load_json(b'["veto","derived"]')
        # Not found (or data.veto not an object) is no error here: there is nothing to remove.
        remove_path(self.store, self.data_addr, path)
        after_path = int(self.opa_heap_ptr_get(self.store))
        self.data_heap = after_path
        entrypoint = self.entrypoints.get(DERIVED_ENTRYPOINT)
        if not isinstance(entrypoint, int):
            return False
        # The input is ignored: `{}` just past the path, the evaluation's heap after it (discarded below).
        if after_path + 2 > self.memory.data_len(self.store):
            self.memory.grow(self.store, 1)
        self.memory.write(self.store, b"{}", after_path)
        result = int(self.opa_eval(self.store, 0, entrypoint, self.data_addr, after_path, 2, after_path + 2, 0))
        result_set = self._read_json(result)
        self.opa_heap_ptr_set(self.store, after_path)
        if not (isinstance(result_set, list) and len(result_set) == 1 and isinstance(result_set[0], dict)):
            return False
        value = result_set[0].get("result")
        if not isinstance(value, dict):
            return False
        if int(add_path(self.store, self.data_addr, path, self._load_json(stringify(value).encode("utf-8")))) != 0:
            self.opa_heap_ptr_set(self.store, after_path)
            return False
        # The policy reads the stored value only when its "from" holds the configured lists, a comparison on
        # every call; the module compares a value with itself at once: each configured list and "from"'s are
        # made one value, equal to both (only text, which parsing gives back unchanged).
        source = value.get("from")
        for key in ("sensitive_fields", "amount_fields", "blocked_destinations"):
            shared_value = source.get(key) if isinstance(source, dict) else None
            if not _only_text(shared_value):
                continue
            shared = self._load_json(stringify(shared_value).encode("utf-8"))
            if int(add_path(self.store, self.data_addr, self._load_json(stringify(["veto", "derived", "from", key]).encode("utf-8")), shared)) != 0:
                break
            add_path(self.store, self.data_addr, self._load_json(stringify(["veto", "config", key]).encode("utf-8")), shared)
        self.data_heap = int(self.opa_heap_ptr_get(self.store))
        return True

    # -- host imports ------------------------------------------------------

    def _import(self, name: str) -> Any:
        i32 = wasmtime.ValType.i32()
        if name == "memory":
            return self.memory
        if name == "opa_abort":
            return wasmtime.Func(self.store, wasmtime.FuncType([i32], []), self._abort)
        if name == "opa_println":
            return wasmtime.Func(self.store, wasmtime.FuncType([i32], []), self._println)
        if name.startswith("opa_builtin") and name[len("opa_builtin") :] in ("0", "1", "2", "3", "4"):
            arity = int(name[len("opa_builtin") :])
            return wasmtime.Func(self.store, wasmtime.FuncType([i32] * (2 + arity), [i32]), self._builtin)
        raise ValueError(f"the module imports env.{name}, which the OPA WASM ABI does not define")

    def _c_string(self, addr: int) -> str:
        """A NUL-terminated string in the module's memory, read byte by byte as the SDK reads it."""
        end = self._nul(addr)
        # The SDK reads signed bytes into String.fromCharCode: a byte b >= 128 becomes U+FF00 + b.
        data = bytes(self.memory.read(self.store, addr, end))
        return "".join(chr(b) if b < 128 else chr(b + 0xFF00) for b in data)

    def _abort(self, addr: int) -> None:
        raise WasmAbort(self._c_string(addr))

    def _println(self, addr: int) -> None:
        pass  # the SDK prints to the console; a decision never depends on it

    def _builtin(self, builtin_id: int, _ctx: int, *args: int) -> int:
        name = self.builtins.get(builtin_id)
        raise _BuiltinNotImplemented(f"not implemented: built-in function {builtin_id}: {name}")

    # -- memory ------------------------------------------------------------

    def _nul(self, addr: int) -> int:
        size = self.memory.data_len(self.store)
        if addr <= 0 or addr >= size:
            raise ValueError("the module returned an address outside its memory")
        base = ctypes.addressof(self.memory.data_ptr(self.store).contents)
        at = addr
        chunk = 4096
        while at < size:
            n = min(chunk, size - at)
            found = ctypes.string_at(base + at, n).find(b"\x00")
            if found >= 0:
                return at + found
            at += n
            chunk *= 4
        raise ValueError("the module's answer is not NUL-terminated")

    def _read_json(self, addr: int) -> Any:
        end = self._nul(addr)
        return parse(bytes(self.memory.read(self.store, addr, end)).decode("utf-8", "replace"))

    def _dump(self, value_addr: int) -> Any:
        return self._read_json(int(self.opa_json_dump(self.store, value_addr)))

    def _load_json(self, text: bytes) -> int:
        addr = int(self.opa_malloc(self.store, len(text)))
        self.memory.write(self.store, text, addr)
        parsed = int(self.opa_json_parse(self.store, addr, len(text)))
        if parsed == 0:
            raise WasmAbort("failed to parse json value")
        return parsed

    # -- evaluation --------------------------------------------------------

    def evaluate_text(self, input_json: bytes, entrypoint: int) -> bytes:
        """The result set's JSON text as the module wrote it (opa_eval through _DirectEval only)."""
        direct = self.direct
        assert direct is not None
        addr = self.data_heap
        length = len(input_json)
        end = addr + length
        # The memory as the last call left it (only a call or a grow here changes it), or as it is now.
        view = direct.view if direct.view is not None else direct.refresh()
        if end > len(view):
            self.memory.grow(self.store, math.ceil((end - len(view)) / PAGE))
            view = direct.refresh()
        view[addr:end] = input_json
        result = direct.call(0, entrypoint, self.data_addr, addr, length, end, 0)
        # The call may have grown the memory (and moved it).
        view = direct.refresh()
        size = len(view)
        if result <= 0 or result >= size:
            raise ValueError("the module returned an address outside its memory")
        nul = _NUL.search(view, result)
        if nul is None:
            raise ValueError("the module's answer is not NUL-terminated")
        return view[result : nul.start()].tobytes()

    def evaluate(self, input_json: bytes, entrypoint: int) -> Any:
        if self.direct is not None:
            return parse(self.evaluate_text(input_json, entrypoint).decode("utf-8", "replace"))
        if self.opa_eval is not None:
            addr = self.data_heap
            short = addr + len(input_json) - self.memory.data_len(self.store)
            if short > 0:
                self.memory.grow(self.store, math.ceil(short / PAGE))
            self.memory.write(self.store, input_json, addr)
            result = int(self.opa_eval(self.store, 0, entrypoint, self.data_addr, addr, len(input_json), addr + len(input_json), 0))
            return self._read_json(result)
        assert self.classic is not None
        ctx_new, set_input, set_data, set_entrypoint, run, get_result = self.classic
        self.opa_heap_ptr_set(self.store, self.data_heap)
        input_addr = self._load_json(input_json)
        ctx = ctx_new(self.store)
        set_input(self.store, ctx, input_addr)
        set_data(self.store, ctx, self.data_addr)
        set_entrypoint(self.store, ctx, entrypoint)
        run(self.store, ctx)
        return self._dump(get_result(self.store, ctx))


def _only_text(value: Any, depth: int = 0) -> bool:
    """A string, or a list or dict of nothing but strings, lists and dicts."""
    if isinstance(value, str):
        return True
    if depth > 64:
        return False
    if isinstance(value, list):
        return all(_only_text(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(_only_text(item, depth + 1) for item in value.values())
    return False


_NUL = re.compile(b"\x00")


def _error_text(error: BaseException) -> str:
    if isinstance(error, wasmtime.Trap):
        return str(error.message) if hasattr(error, "message") else str(error)
    return str(error)


class PolicyEvaluator:
    """The bundle's module, compiled once, and one live instance of it; thread-safe (one evaluation at a time)."""

    # ClassVar: one engine and one module cache per process, shared by every instance (and class attributes
    # for mypyc too, should this module be compiled).
    _engine: ClassVar[Optional[wasmtime.Engine]] = None
    _engine_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, module: wasmtime.Module, engine: wasmtime.Engine, data_json: bytes, instance: _Instance, entrypoint: int) -> None:
        self._module = module
        self._engine_ref = engine
        self._data = data_json
        self._instance: Optional[_Instance] = instance
        self._entrypoint = entrypoint
        self._lock = threading.Lock()
        self.instantiations = 1
        #: Answers already read, by the result set's text (immutable PolicyAnswers; bounded by ANSWERS_KEPT).
        self._answers: dict[bytes, PolicyAnswer] = {}

    @classmethod
    def engine(cls) -> wasmtime.Engine:
        with cls._engine_lock:
            if cls._engine is None:
                cls._engine = wasmtime.Engine()
            return cls._engine

    _modules: "ClassVar[dict[bytes, wasmtime.Module]]" = {}

    @classmethod
    def _compiled(cls, engine: wasmtime.Engine, wasm: bytes) -> wasmtime.Module:
        """Compiling takes about half a second: the last few modules are kept, by the SHA-256 of their bytes."""
        key = hashlib.sha256(wasm).digest()
        with cls._engine_lock:
            module = cls._modules.get(key)
        if module is None:
            module = wasmtime.Module(engine, wasm)
            with cls._engine_lock:
                if len(cls._modules) >= 4:
                    cls._modules.pop(next(iter(cls._modules)))
                cls._modules[key] = module
        return module

    @classmethod
    def create(cls, wasm: bytes, data_json: str) -> "PolicyEvaluator":
        """Compile the module, load the data document and check that one evaluation yields a decision; raises BundleLoadError."""
        engine = cls.engine()
        data = data_json.encode("utf-8")
        try:
            module = cls._compiled(engine, wasm)
            instance = _Instance(engine, module, data)
        except (wasmtime.WasmtimeError, wasmtime.Trap, WasmAbort, ValueError, JsonParseError) as error:
            raise BundleLoadError("bundle_unusable", f"bundle wasm module cannot be loaded: {_error_text(error)}") from None
        if DECISION_ENTRYPOINT not in instance.entrypoints:
            raise BundleLoadError("bundle_unusable", f"bundle wasm module has no entrypoint {DECISION_ENTRYPOINT}")
        evaluator = cls(module, engine, data, instance, int(instance.entrypoints[DECISION_ENTRYPOINT]))
        probe = evaluator.evaluate_json(stringify({"tool": "", "arguments": {}, "context": {}, "history": {"recentDenies": 0}}))
        if not probe.ok:
            raise BundleLoadError("bundle_unusable", f"bundle does not answer {DECISION_ENTRYPOINT} with a decision: {probe.error}")
        return evaluator

    def evaluate_call(self, call_json: str, recent_denies: Any) -> Evaluation:
        """Evaluate a checked call given as its canonical JSON with ``recent_denies``: the call is not serialized again."""
        if isinstance(recent_denies, bool) or not isinstance(recent_denies, int) or recent_denies < 0 or recent_denies > 2**53 - 1:
            return Evaluation(False, 0, error=f"the deny history is not a count: {recent_denies}")
        return self._evaluate_bytes(f'{call_json[:-1]},"history":{{"recentDenies":{recent_denies}}}}}'.encode("utf-8"), time.perf_counter_ns())

    def evaluate_json(self, input_json: str) -> Evaluation:
        started = time.perf_counter_ns()
        return self._evaluate_bytes(input_json.encode("utf-8"), started)

    def _evaluate_bytes(self, input_json: bytes, started: int) -> Evaluation:
        with self._lock:
            try:
                # After a failed evaluation the instance may hold a half-written heap: start again from the module.
                if self._instance is None:
                    self._instance = _Instance(self._engine_ref, self._module, self._data)
                    self.instantiations += 1
                instance = self._instance
                if instance.direct is not None:
                    # Most calls get one of a few answers: each answer's text is read and checked once (read_answer is
                    # a function of the text alone), then found by its bytes.
                    text = instance.evaluate_text(input_json, self._entrypoint)
                    answer = self._answers.get(text)
                    if answer is None:
                        answer = read_answer(parse(text.decode("utf-8", "replace")))
                        if len(self._answers) >= ANSWERS_KEPT:
                            self._answers.clear()
                        self._answers[text] = answer
                else:
                    answer = read_answer(instance.evaluate(input_json, self._entrypoint))
                return Evaluation(True, time.perf_counter_ns() - started, answer=answer)
            except Exception as error:
                if not (isinstance(error, WasmAbort) and str(error) in INPUT_PARSE_ABORTS):
                    self._instance = None
                return Evaluation(False, time.perf_counter_ns() - started, error=_error_text(error))


def read_answer(result_set: Any) -> PolicyAnswer:
    """The decision in a result set; raises ValueError for anything that is not exactly one well-formed decision."""
    if not (isinstance(result_set, list) and len(result_set) == 1 and isinstance(result_set[0], dict) and "result" in result_set[0]):
        raise ValueError(f"{DECISION_ENTRYPOINT} produced no single result (it may be undefined for this input)")
    problem = answer_problem(result_set[0]["result"])
    if problem is not None:
        raise ValueError(f"{DECISION_ENTRYPOINT} answered something that is not a decision: {problem}")
    a = result_set[0]["result"]
    return PolicyAnswer(
        action=a["action"],
        escalated=a["escalated"],
        reasons=tuple(Reason(r["code"], r["message"]) for r in a["reasons"]),
        approvers=tuple(a["approvers"]),
        destination_hosts=tuple(a["destination_hosts"]) if "destination_hosts" in a else None,
    )


def answer_problem(a: Any) -> Optional[str]:
    """What is wrong with a policy answer (decision.ts's policyAnswerSchema), or None."""
    if not isinstance(a, dict):
        return "expected an object"
    if set(a) - {"destination_hosts"} != {"action", "escalated", "reasons", "approvers"}:
        return "expected exactly action, escalated, reasons and approvers (and optionally destination_hosts)"
    if "destination_hosts" in a:
        hosts = a["destination_hosts"]
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            return "destination_hosts must be an array of strings"
    if a["action"] not in ("allow", "deny", "require_approval"):
        return "action must be allow, deny or require_approval"
    if not isinstance(a["escalated"], bool):
        return "escalated must be a boolean"
    reasons = a["reasons"]
    if not isinstance(reasons, list) or len(reasons) < 1:
        return "reasons must be a non-empty array"
    for r in reasons:
        if not isinstance(r, dict) or set(r) != {"code", "message"}:
            return "each reason must be exactly {code, message}"
        if not isinstance(r["code"], str) or r["code"] == "" or not isinstance(r["message"], str):
            return "a reason's code must be a non-empty string and its message a string"
    approvers = a["approvers"]
    if not isinstance(approvers, list) or not all(isinstance(x, str) and x != "" for x in approvers):
        return "approvers must be an array of non-empty strings"
    if (a["action"] == "require_approval") != (len(approvers) > 0):
        return "approvers must be non-empty exactly when action is require_approval"
    if a["escalated"] and a["action"] != "deny":
        return "only a deny can be escalated"
    return None

