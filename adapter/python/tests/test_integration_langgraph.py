"""
veto_crm.integrations.langgraph: a LangGraph graph as an application builds
it (a model node, a ToolNode with the Veto wrapper, each tool call sent to it),
LangChain's own fake chat model, interrupt()/Command, the PostgreSQL
checkpointer on a real PostgreSQL, and the real bundle (docs/python.md
"Integrations").
"""

from __future__ import annotations

import itertools
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import psycopg
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, Send, interrupt
from pydantic import BaseModel

from veto_crm import create_async_veto, create_veto
from veto_crm.integrations.langgraph import VetoToolCallWrapper, veto_interrupts, veto_tool_node

from .conftest import OTHER_APPROVER, TEST_BUNDLE, MemorySink
from .integration_parts import APP_CONTEXT, APPROVER, Recorded, fresh_schema, pg_url, recorded, schema_url, update

__all__ = ["recorded"]


class CrmUpdate(BaseModel):
    object: str
    recordId: str
    tenantId: str
    changes: dict[str, Any]
    amount: Optional[float] = None
    reason: str


class Crm:
    """The CRM the tool writes to: every execution, with the arguments it got."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.lock = threading.Lock()

        def crm_update(**args: Any) -> str:
            with self.lock:
                self.runs.append({k: v for k, v in args.items() if v is not None})
            return f"updated {args['recordId']}"

        self.tool = StructuredTool.from_function(crm_update, name="crm_update", description="Update a CRM record", args_schema=CrmUpdate)


def model_calling(*calls: dict[str, Any]) -> GenericFakeChatModel:
    """LangChain's fake chat model: one turn calling crm_update with each of ``calls``, then "done" for ever."""
    first = AIMessage(content="", tool_calls=[{"id": f"tc_{uuid.uuid4().hex[:8]}", "name": "crm_update", "args": args} for args in calls])
    return GenericFakeChatModel(messages=itertools.chain([first], (AIMessage(content="done") for _ in itertools.count())))


def graph_for(
    crm: Crm,
    checkpointer: BaseCheckpointSaver[Any],
    model: GenericFakeChatModel,
    veto: Any,
    wrap: Optional[Callable[[VetoToolCallWrapper], Any]] = None,
) -> Any:
    """The application's graph: the model's tool calls, each sent to the governed tools node."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> Any:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return [Send("tools", {"__type": "tool_call_with_context", "tool_call": c, "state": state}) for c in last.tool_calls]
        return END

    context = lambda run: run.runtime.context["veto"]  # noqa: E731 - the application's context, as an application writes it
    if wrap is None:
        tools = veto_tool_node([crm.tool], veto=veto, context=context, tool_names={"crm_update": "crm.update"})
    else:
        from langgraph.prebuilt import ToolNode

        tools = ToolNode([crm.tool], wrap_tool_call=wrap(VetoToolCallWrapper(veto=veto, context=context, tool_names={"crm_update": "crm.update"})))
    builder = StateGraph(MessagesState, context_schema=dict)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def config(context: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t_{uuid.uuid4().hex}"}, "context": {"veto": context or APP_CONTEXT}}


def invoke(graph: Any, value: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    return graph.invoke(value, {"configurable": cfg["configurable"]}, context=cfg["context"])  # type: ignore[no-any-return]


def ask() -> dict[str, Any]:
    return {"messages": [HumanMessage("Move the close date")]}


def tool_texts(result: Any) -> list[str]:
    messages: list[BaseMessage] = result["messages"] if isinstance(result, dict) else result.values["messages"]
    return [str(m.content) for m in messages if isinstance(m, ToolMessage)]


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    """A PostgreSQL schema of this module's own for the checkpointer, dropped at the end."""
    schema = fresh_schema("lg")
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    with saver_on(schema) as saver:
        saver.setup()
    yield schema
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def saver_on(schema: str) -> Iterator[PostgresSaver]:
    """A PostgresSaver on its own connection: another graph instance, as after a restart."""
    with PostgresSaver.from_conn_string(schema_url(pg_url(), schema)) as saver:
        yield saver


def test_allow_runs_the_tool_once_with_exactly_the_decided_arguments(recorded: Recorded) -> None:
    crm = Crm()
    result = invoke(graph_for(crm, InMemorySaver(), model_calling(update(amount=100)), recorded.veto), ask(), config())
    assert crm.runs == [update(amount=100)]
    assert tool_texts(result) == ["updated opp_1"]
    assert [d["result"]["action"] for d in recorded.decisions()] == ["allow"]


def test_deny_never_runs_the_model_reads_the_codes_and_denies_escalate(recorded: Recorded) -> None:
    crm = Crm()
    actor = {**APP_CONTEXT, "actorId": "agent:support-triage"}
    for _ in range(3):
        result = invoke(graph_for(crm, InMemorySaver(), model_calling(update(tenantId="globex")), recorded.veto), ask(), config(actor))
        [text] = tool_texts(result)
        assert text.startswith("Denied by policy [wrong_tenant]: ")
        assert result["messages"][-1].content == "done"
    # The next call of that actor, harmless on its own, is denied as a repeated attempt.
    result = invoke(graph_for(crm, InMemorySaver(), model_calling(update(amount=100)), recorded.veto), ask(), config(actor))
    assert "repeated_denies" in tool_texts(result)[0]
    assert crm.runs == []


def test_approval_pauses_and_a_new_graph_on_postgres_resumes_it_exactly_once(recorded: Recorded, pg_schema: str) -> None:
    crm = Crm()
    cfg = config()
    with saver_on(pg_schema) as saver:
        first = invoke(graph_for(crm, saver, model_calling(update(amount=9000)), recorded.veto), ask(), cfg)
    [pause] = veto_interrupts(first)
    assert pause.tool == "crm.update" and APPROVER in pause.approvers
    assert "production_amount" in [r["code"] for r in pause.reasons]
    assert pause.message.startswith(f"Approval required (veto decision {pause.decision_id}; approvers: ")
    assert crm.runs == []
    recorded.veto.approve(pause.decision_id, APPROVER)

    # A new graph instance on a new connection (as after a restart) finds the pause and resumes it.
    with saver_on(pg_schema) as saver:
        graph = graph_for(crm, saver, model_calling(), recorded.veto)
        snapshot = graph.get_state({"configurable": cfg["configurable"]})
        assert [p.decision_id for p in veto_interrupts(snapshot)] == [pause.decision_id]
        done = invoke(graph, Command(resume={"approved": True}), cfg)
    assert tool_texts(done) == ["updated opp_1"]
    assert crm.runs == [update(amount=9000)]
    assert recorded.approval_status(pause.decision_id) == "executed"
    assert recorded.executions(pause.decision_id) == ["claimed"]
    # One decision only: the resumed node read it back from the checkpoint.
    assert len(recorded.decisions()) == 1

    # Replaying the paused step (time travel) never runs the call again.
    with saver_on(pg_schema) as saver:
        graph = graph_for(crm, saver, model_calling(), recorded.veto)
        history = list(graph.get_state_history({"configurable": cfg["configurable"]}))
        paused = next(s for s in history if veto_interrupts(s))
        replay = invoke(graph, Command(resume={"approved": True}), {**cfg, "configurable": paused.config["configurable"]})
    # The replayed step decides the call anew: the executed approval is not used again, the new decision has no answer.
    assert tool_texts(replay)[-1].startswith("Not executed [approval_pending]: ")
    assert pause.decision_id not in tool_texts(replay)[-1]
    assert crm.runs == [update(amount=9000)]


def test_reject_the_resumed_call_never_runs_and_the_model_reads_approval_rejected(recorded: Recorded, pg_schema: str) -> None:
    crm = Crm()
    cfg = config()
    with saver_on(pg_schema) as saver:
        [pause] = veto_interrupts(invoke(graph_for(crm, saver, model_calling(update(amount=9000, recordId="opp_2")), recorded.veto), ask(), cfg))
    recorded.veto.reject(pause.decision_id, APPROVER, "not this quarter")
    with saver_on(pg_schema) as saver:
        done = invoke(graph_for(crm, saver, model_calling(), recorded.veto), Command(resume={"approved": True}), cfg)
    [text] = tool_texts(done)
    assert text.startswith("Not executed [approval_rejected]: ") and "not this quarter" in text
    assert crm.runs == []


def test_a_forged_approval_resume_says_approved_the_store_does_not_is_refused(recorded: Recorded) -> None:
    crm = Crm()
    cfg = config()
    saver = InMemorySaver()
    [pause] = veto_interrupts(invoke(graph_for(crm, saver, model_calling(update(amount=9000, recordId="opp_3")), recorded.veto), ask(), cfg))
    done = invoke(graph_for(crm, saver, model_calling(), recorded.veto), Command(resume={"approved": True}), cfg)
    assert [t.split(":")[0] for t in tool_texts(done)] == ["Not executed [approval_pending]"]
    assert crm.runs == []
    assert recorded.approval_status(pause.decision_id) == "pending"


def test_declined_by_the_application_never_runs(recorded: Recorded) -> None:
    crm = Crm()
    cfg = config()
    saver = InMemorySaver()
    [pause] = veto_interrupts(invoke(graph_for(crm, saver, model_calling(update(amount=9000)), recorded.veto), ask(), cfg))
    recorded.veto.approve(pause.decision_id, APPROVER)
    done = invoke(graph_for(crm, saver, model_calling(), recorded.veto), Command(resume={"approved": False}), cfg)
    assert tool_texts(done) == [f"Not executed [declined]: the application declined decision {pause.decision_id}"]
    assert crm.runs == []
    # Nothing was claimed: the approval stands, unused.
    assert recorded.approval_status(pause.decision_id) == "approved"


def test_two_resumes_at_once_run_the_tool_once_the_other_is_already_executed(recorded: Recorded, pg_schema: str) -> None:
    crm = Crm()
    cfg = config()
    with saver_on(pg_schema) as saver:
        [pause] = veto_interrupts(invoke(graph_for(crm, saver, model_calling(update(amount=9000, recordId="opp_5")), recorded.veto), ask(), cfg))
    recorded.veto.approve(pause.decision_id, APPROVER)
    results: list[Any] = [None, None]
    start = threading.Barrier(2)

    def resume(i: int) -> None:
        with saver_on(pg_schema) as saver:
            graph = graph_for(crm, saver, model_calling(), recorded.veto)
            start.wait()
            results[i] = invoke(graph, Command(resume={"approved": True}), cfg)

    workers = [threading.Thread(target=resume, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    said = sorted(tool_texts(r)[-1] for r in results)
    assert said[0].startswith("Not executed [already_executed]: ") and said[1] == "updated opp_5", said
    assert crm.runs == [update(amount=9000, recordId="opp_5")]
    assert recorded.executions(pause.decision_id) == ["claimed", "refused"]


def test_a_second_resume_of_the_finished_thread_never_runs_again(recorded: Recorded, pg_schema: str) -> None:
    crm = Crm()
    cfg = config()
    with saver_on(pg_schema) as saver:
        [pause] = veto_interrupts(invoke(graph_for(crm, saver, model_calling(update(amount=9000, recordId="opp_6")), recorded.veto), ask(), cfg))
    recorded.veto.approve(pause.decision_id, APPROVER)
    for _ in range(2):
        with saver_on(pg_schema) as saver:
            invoke(graph_for(crm, saver, model_calling(), recorded.veto), Command(resume={"approved": True}), cfg)
    assert crm.runs == [update(amount=9000, recordId="opp_6")]
    assert recorded.executions(pause.decision_id) == ["claimed"]


def test_two_calls_paused_in_one_step_are_resumed_by_interrupt_id(recorded: Recorded, pg_schema: str) -> None:
    crm = Crm()
    cfg = config()
    calls = [update(amount=9000, recordId="opp_a"), update(amount=8000, recordId="opp_b")]
    with saver_on(pg_schema) as saver:
        pauses = veto_interrupts(invoke(graph_for(crm, saver, model_calling(*calls), recorded.veto), ask(), cfg))
    assert sorted(p.arguments["recordId"] for p in pauses) == ["opp_a", "opp_b"]
    assert len({p.interrupt_id for p in pauses}) == 2
    a = next(p for p in pauses if p.arguments["recordId"] == "opp_a")
    b = next(p for p in pauses if p.arguments["recordId"] == "opp_b")
    recorded.veto.approve(a.decision_id, APPROVER)
    recorded.veto.reject(b.decision_id, OTHER_APPROVER)
    assert a.interrupt_id is not None and b.interrupt_id is not None
    with saver_on(pg_schema) as saver:
        done = invoke(
            graph_for(crm, saver, model_calling(), recorded.veto),
            Command(resume={a.interrupt_id: {"approved": True}, b.interrupt_id: {"approved": True}}),
            cfg,
        )
    texts = sorted(tool_texts(done))
    assert texts[0].startswith("Not executed [approval_rejected]: ") and texts[1] == "updated opp_a", texts
    assert crm.runs == [calls[0]]


def test_edited_arguments_on_resume_the_approval_does_not_carry_over(recorded: Recorded, pg_schema: str) -> None:
    crm = Crm()
    cfg = config()
    with saver_on(pg_schema) as saver:
        graph = graph_for(crm, saver, model_calling(update(amount=9000, recordId="opp_4")), recorded.veto)
        [pause] = veto_interrupts(invoke(graph, ask(), cfg))
        recorded.veto.approve(pause.decision_id, APPROVER)
        # The client rewrites the paused tool call's arguments in the thread, then resumes.
        state = graph.get_state({"configurable": cfg["configurable"]})
        proposal = next(m for m in reversed(state.values["messages"]) if isinstance(m, AIMessage))
        edited = AIMessage(
            id=proposal.id, content="", tool_calls=[{**c, "args": {**c["args"], "amount": 240000}} for c in proposal.tool_calls]
        )
        graph.update_state({"configurable": cfg["configurable"]}, {"messages": [edited]})
        done = invoke(graph, Command(resume={"approved": True}), cfg)
    # The edited call is a decision of its own, with no answer yet: refused; the approval of the original is not used.
    assert all(t.startswith("Not executed [") for t in tool_texts(done)), tool_texts(done)
    assert pause.decision_id not in tool_texts(done)[-1]
    assert crm.runs == []
    assert recorded.approval_status(pause.decision_id) == "approved"


def test_an_allow_read_back_after_a_later_pause_is_decided_again(recorded: Recorded) -> None:
    """Another wrapper pauses after Veto allowed; meanwhile the actor is escalated: on resume the call is decided again, denied."""
    crm = Crm()
    actor = {"actorId": "agent:confirming", "tenantId": "globex", "environment": "production"}
    cfg = config(actor)

    def confirm_first(veto_wrapper: VetoToolCallWrapper) -> Any:
        def wrap(request: Any, execute: Any) -> Any:
            return veto_wrapper(request, lambda r: (interrupt({"type": "confirm"}), execute(r))[1])

        return wrap

    saver = InMemorySaver()
    model = model_calling(update(amount=100, recordId="opp_7", tenantId="globex"))
    first = invoke(graph_for(crm, saver, model, recorded.veto, wrap=confirm_first), ask(), cfg)
    assert [i.value for i in first["__interrupt__"]] == [{"type": "confirm"}]
    assert veto_interrupts(first) == []
    for _ in range(3):
        denied = recorded.veto.protect({"tool": "crm.update", "arguments": {"object": "opportunity", "recordId": "opp_7", "tenantId": "acme"}, "context": actor})
        assert "wrong_tenant" in [r.code for r in denied.reasons]
    done = invoke(graph_for(crm, saver, model, recorded.veto, wrap=confirm_first), Command(resume=True), cfg)
    [text] = tool_texts(done)
    assert "repeated_denies" in text
    assert crm.runs == []


def test_the_tool_runs_with_the_decided_input_whatever_happens_to_the_frameworks_copy(recorded: Recorded) -> None:
    crm = Crm()

    def tamper_after_decision(veto_wrapper: VetoToolCallWrapper) -> Any:
        def wrap(request: Any, execute: Any) -> Any:
            # Code between the decision and the tool changes the arguments the framework holds.
            return veto_wrapper(request, lambda r: (request.tool_call["args"]["changes"].update(stage="closed_won"), execute(r))[1])

        return wrap

    result = invoke(graph_for(crm, InMemorySaver(), model_calling(update(amount=100)), recorded.veto, wrap=tamper_after_decision), ask(), config())
    assert tool_texts(result) == ["updated opp_1"]
    assert crm.runs == [update(amount=100)]


def test_the_context_is_the_applications_never_the_models(recorded: Recorded) -> None:
    crm = Crm()
    # The model claims another actor and tenant in its arguments; the call is decided with the application's context.
    claimed = update(amount=100, actorId="agent:billing-bot", context={"actorId": "agent:billing-bot", "tenantId": "initech"})
    invoke(graph_for(crm, InMemorySaver(), model_calling(claimed), recorded.veto), ask(), config())
    [decision] = recorded.decisions()
    assert decision["input"]["context"] == {**APP_CONTEXT, "reason": claimed["reason"]}
    assert decision["input"]["tool"] == "crm.update"
    assert "reason" not in decision["input"]["arguments"]
    assert decision["actor_id"] == APP_CONTEXT["actorId"]


async def test_async_graphs_pause_and_resume_once_through_awrap(pg_schema: str) -> None:
    sink = MemorySink()
    veto = await create_async_veto(TEST_BUNDLE, record_sink=sink, approval_poll_ms=10)
    crm = Crm()
    cfg = config()
    try:
        allowed = await graph_for(crm, InMemorySaver(), model_calling(update(amount=100)), veto).ainvoke(ask(), {"configurable": cfg["configurable"]}, context=cfg["context"])
        assert tool_texts(allowed) == ["updated opp_1"]
        saver = InMemorySaver()
        paused = await graph_for(crm, saver, model_calling(update(amount=9000, recordId="opp_9")), veto).ainvoke(
            ask(), {"configurable": cfg["configurable"]}, context=cfg["context"]
        )
        [pause] = veto_interrupts(paused)
        await veto.approve(pause.decision_id, APPROVER)
        for _ in range(2):
            await graph_for(crm, saver, model_calling(), veto).ainvoke(
                Command(resume={"approved": True}), {"configurable": cfg["configurable"]}, context=cfg["context"]
            )
        assert crm.runs == [update(amount=100), update(amount=9000, recordId="opp_9")]
    finally:
        await veto.close()


async def test_a_pause_made_by_invoke_resumes_with_ainvoke(recorded: Recorded, pg_schema: str) -> None:
    crm = Crm()
    cfg = config()
    with saver_on(pg_schema) as saver:
        [pause] = veto_interrupts(invoke(graph_for(crm, saver, model_calling(update(amount=9000, recordId="opp_m")), recorded.veto), ask(), cfg))
    recorded.veto.approve(pause.decision_id, APPROVER)
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(schema_url(pg_url(), pg_schema)) as saver:
        done = await graph_for(crm, saver, model_calling(), recorded.veto).ainvoke(
            Command(resume={"approved": True}), {"configurable": cfg["configurable"]}, context=cfg["context"]
        )
    assert tool_texts(done) == ["updated opp_m"]
    assert crm.runs == [update(amount=9000, recordId="opp_m")]
    assert len(recorded.decisions()) == 1


def test_amended_calls_run_once_with_the_amended_input_as_decided_and_never_count(recorded: Recorded) -> None:
    """docs/contract.md §6, amend: allowed or approved, once with the amended input, saying so; denied or rejected, never; none counts."""
    other = create_veto(TEST_BUNDLE, data=_moved_approvers(), store=recorded.store, record_sink=recorded.sink, approval_poll_ms=10)
    crm = Crm()
    saver = InMemorySaver()
    try:
        cases = [("allowed", recorded.veto, 100), ("approved", recorded.veto, 8000), ("denied", recorded.veto, 10_000_000), ("rejected", other, 8000)]
        for i, (name, amender, amount) in enumerate(cases):
            cfg = config()
            asked = update(amount=9000, recordId=f"opp_am{i}")
            [pause] = veto_interrupts(invoke(graph_for(crm, saver, model_calling(asked), recorded.veto), ask(), cfg))
            paused_at = saver.get_tuple({"configurable": cfg["configurable"]})
            assert paused_at is not None
            amended_args = {k: v for k, v in asked.items() if k != "reason"} | {"amount": amount}
            result = amender.amend(pause.decision_id, APPROVER, amended_args)
            if name == "rejected":
                other.reject(result.decision.id, "user:cfo@acme.example")
            done = invoke(graph_for(crm, saver, model_calling(), recorded.veto), Command(resume={"approved": True}), cfg)
            [text] = tool_texts(done)
            if name in ("allowed", "approved"):
                assert text.startswith(f"Note: the reviewer {APPROVER} amended this call's arguments before it ran (veto decision {pause.decision_id} -> {result.decision.id})"), text
                assert text.endswith(f"\nupdated opp_am{i}"), text
                assert crm.runs[-1] == {**asked, "amount": amount}, name
            else:
                code = "amount_over_limit" if name == "denied" else "approval_rejected"
                assert text.startswith(f"Not executed [{code}]: "), (name, text)
            runs = len(crm.runs)
            # A second resume of the same pause (replayed from its checkpoint) never runs it again.
            again = graph_for(crm, saver, model_calling(), recorded.veto).invoke(
                Command(resume={"approved": True}), {"configurable": paused_at.config["configurable"]}, context=cfg["context"]
            )
            [*_, text_again] = tool_texts(again)
            assert text_again.startswith("Not executed ["), text_again
            assert len(crm.runs) == runs
        assert [r["amount"] for r in crm.runs] == [100, 8000]
        assert recorded.store.count_recent_denies(APP_CONTEXT["actorId"], APP_CONTEXT["tenantId"], 0) == 0
    finally:
        other.close()


def _moved_approvers() -> dict[str, Any]:
    """The test data with acme's approvers changed, so an amendment by APPROVER awaits another approver's answer."""
    import json

    from .conftest import FIXTURE_DATA

    data: dict[str, Any] = json.loads(FIXTURE_DATA.read_text())
    data["veto"]["config"]["tenants"]["acme"]["approvers"] = [OTHER_APPROVER, "user:cfo@acme.example"]
    return data
