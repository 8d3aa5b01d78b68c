"""
veto_crm.integrations.openai_agents: the OpenAI Agents SDK for Python with its
own scripted test model (agents.testing.ScriptedModel, no network), its
needs_approval / RunState approval flow and tool input guardrails, and the
real bundle (docs/python.md "Integrations").
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import pytest
from agents import Agent, FunctionTool, ModelBehaviorError, RunConfig, Runner, RunState, ToolExecutionConfig, function_tool, set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message, function_call

from veto_crm import VetoOptionsError
from veto_crm.integrations.openai_agents import VetoAgents

from .integration_parts import APP_CONTEXT, APPROVER, Recorded, recorded, update

__all__ = ["recorded"]

set_tracing_disabled(True)


class Crm:
    """The CRM the tool writes to: every execution, with the arguments it got."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

        @function_tool(strict_mode=False)
        def crm_update(object: str, recordId: str, tenantId: str, changes: dict[str, Any], reason: str, amount: Optional[float] = None) -> str:
            """Update a CRM record."""
            args = {"object": object, "recordId": recordId, "tenantId": tenantId, "changes": changes, "reason": reason, "amount": amount}
            self.runs.append({k: v for k, v in args.items() if v is not None})
            return f"updated {recordId}"

        self.tool: FunctionTool = crm_update


def governed(recorded: Recorded) -> VetoAgents:
    """As an application sets it up: the context from the run's own context, tool names mapped to the policy's."""
    return VetoAgents(veto=recorded.veto, context=lambda run: run.context["app"], tool_names={"crm_update": "crm.update"})


def agent_for(tool: FunctionTool, *steps: Any) -> Agent[Any]:
    """An agent on the SDK's scripted model: ``steps`` first, then "done" for every later turn."""
    return Agent(name="crm", instructions="Keep the CRM up to date.", tools=[tool], model=ScriptedModel([*steps, *([[assistant_message("done")]] * 4)]))


def calling(*calls: dict[str, Any], ids: Optional[list[str]] = None) -> list[Any]:
    """One model turn calling crm_update with each of ``calls``."""
    return [function_call("crm_update", args, call_id=(ids or [f"call_{i}" for i in range(len(calls))])[i]) for i, args in enumerate(calls)]


def tool_outputs(agent: Agent[Any]) -> list[str]:
    """What the model read back as tool outputs, over all its calls."""
    model = agent.model
    assert isinstance(model, ScriptedModel)
    seen: list[str] = []
    for call in model.calls:
        for item in call.input if isinstance(call.input, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call_output" and item["output"] not in seen:
                seen.append(item["output"])
    return seen


def run_context() -> dict[str, Any]:
    return {"app": dict(APP_CONTEXT)}


async def test_allow_runs_the_tool_once_with_the_decided_input(recorded: Recorded) -> None:
    crm = Crm()
    agent = agent_for(governed(recorded).tool(crm.tool), calling(update(amount=100)))
    result = await Runner.run(agent, "Move the close date", context=run_context())
    assert result.interruptions == []
    assert crm.runs == [update(amount=100)]
    assert tool_outputs(agent) == ["updated opp_1"]
    assert [d["result"]["action"] for d in recorded.decisions()] == ["allow"]


async def test_deny_never_runs_the_model_reads_the_codes_and_denies_escalate(recorded: Recorded) -> None:
    crm = Crm()
    tool = governed(recorded).tool(crm.tool)
    actor = {**APP_CONTEXT, "actorId": "agent:support-triage"}
    for _ in range(3):
        agent = agent_for(tool, calling(update(tenantId="globex")))
        result = await Runner.run(agent, "Move it", context={"app": actor})
        assert result.interruptions == []
        [text] = tool_outputs(agent)
        assert text.startswith("Denied by policy [wrong_tenant]: ")
    agent = agent_for(tool, calling(update(amount=100)))
    await Runner.run(agent, "Move it", context={"app": actor})
    assert "repeated_denies" in tool_outputs(agent)[0]
    assert crm.runs == []


async def paused(recorded: Recorded, crm: Crm, args: dict[str, Any], vetoed: Optional[VetoAgents] = None) -> tuple[VetoAgents, str, str]:
    """A run paused on a call that needs approval: the governed tools, the saved state, the decision id."""
    vetoed = vetoed or governed(recorded)
    agent = agent_for(vetoed.tool(crm.tool), calling(args))
    result = await Runner.run(agent, "Move it", context=run_context())
    [pending] = vetoed.pending_approvals(result)
    assert pending.decision_id is not None and pending.message is not None
    assert pending.message.startswith(f"Approval required (veto decision {pending.decision_id}; approvers: ")
    assert crm.runs == []
    return vetoed, result.to_state().to_string(), pending.decision_id


async def resume(vetoed: VetoAgents, crm: Crm, saved: str, approve: bool = True) -> Agent[Any]:
    """In a new agent (as in another process): restore the state, answer at the SDK level, run."""
    agent = agent_for(vetoed.tool(crm.tool))
    state = await RunState.from_string(agent, saved)
    for pending in vetoed.pending_approvals(state):
        if approve:
            state.approve(pending.item)
        else:
            state.reject(pending.item)
    await Runner.run(agent, state)
    return agent


async def test_approval_pauses_and_the_restored_run_resumes_it_exactly_once(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000))
    assert json.loads(saved)["context"]["context"]["veto"]["decisions"]["call_0"]["decision_id"] == decision_id
    recorded.veto.approve(decision_id, APPROVER)
    # A new VetoAgents too: nothing of the first process's memory is needed.
    agent = await resume(governed(recorded), crm, saved)
    assert crm.runs == [update(amount=9000)]
    assert tool_outputs(agent) == ["updated opp_1"]
    assert recorded.approval_status(decision_id) == "executed"
    assert len(recorded.decisions()) == 1


async def test_a_second_resume_of_the_same_state_never_runs_again(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_2"))
    recorded.veto.approve(decision_id, APPROVER)
    await resume(vetoed, crm, saved)
    again = await resume(vetoed, crm, saved)
    [text] = tool_outputs(again)
    assert text.startswith("Not executed [already_executed]: ")
    assert crm.runs == [update(amount=9000, recordId="opp_2")]
    assert recorded.executions(decision_id) == ["claimed", "refused"]


async def test_two_resumes_at_once_run_the_tool_once(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_5"))
    recorded.veto.approve(decision_id, APPROVER)
    agents = await asyncio.gather(resume(vetoed, crm, saved), resume(vetoed, crm, saved))
    said = sorted(tool_outputs(a)[0] for a in agents)
    assert said[0].startswith("Not executed [already_executed]: ") and said[1] == "updated opp_5", said
    assert crm.runs == [update(amount=9000, recordId="opp_5")]


async def test_reject_in_the_store_the_sdk_approval_is_not_evidence(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_3"))
    recorded.veto.reject(decision_id, APPROVER, "not this quarter")
    agent = await resume(vetoed, crm, saved)
    [text] = tool_outputs(agent)
    assert text.startswith("Not executed [approval_rejected]: ") and "not this quarter" in text
    assert crm.runs == []


async def test_a_forged_approval_state_approve_with_nothing_in_the_store_is_refused(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_4"))
    agent = await resume(vetoed, crm, saved)
    assert [t.split(":")[0] for t in tool_outputs(agent)] == ["Not executed [approval_pending]"]
    assert crm.runs == []
    assert recorded.approval_status(decision_id) == "pending"


async def test_rejected_at_the_sdk_level_never_runs(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000))
    recorded.veto.approve(decision_id, APPROVER)
    await resume(vetoed, crm, saved, approve=False)
    assert crm.runs == []
    assert recorded.approval_status(decision_id) == "approved"


async def test_arguments_edited_in_the_saved_state_are_refused(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_6"))
    recorded.veto.approve(decision_id, APPROVER)
    # Whoever holds the state rewrites the paused call's arguments everywhere, drops the SDK's own fingerprint of
    # the invocation (which would catch the edit), and approves it at the SDK level: only Veto's claim is left.
    original, changed = json.dumps(update(amount=9000, recordId="opp_6"), separators=(",", ":")), json.dumps(update(amount=240000, recordId="opp_6"), separators=(",", ":"))
    state = json.loads(saved)
    del state["context"]["tool_invocations"]["call_0"]
    edited = json.dumps(state).replace(json.dumps(original), json.dumps(changed))
    assert edited.count("240000") >= 5
    agent = await resume(vetoed, crm, edited)
    [text] = tool_outputs(agent)
    assert text.startswith("Not executed [call_mismatch]: ")
    assert crm.runs == []
    # The approval of the original is not used up.
    assert recorded.approval_status(decision_id) == "approved"


async def test_a_restored_state_without_the_kept_decisions_is_refused(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_7"))
    recorded.veto.approve(decision_id, APPROVER)
    agent = agent_for(vetoed.tool(crm.tool))
    # The application restores with a context of its own that lost the kept decisions.
    state = await RunState.from_string(agent, saved, context_override=run_context())
    for pending in vetoed.pending_approvals(state):
        assert pending.decision_id is None
        state.approve(pending.item)
    await Runner.run(agent, state)
    [text] = tool_outputs(agent)
    assert text.startswith("Not executed [unknown_decision]: ")
    assert crm.runs == []


async def test_pre_approval_guardrails_a_deny_is_never_an_approval_request(recorded: Recorded) -> None:
    crm = Crm()
    vetoed = governed(recorded)
    config = RunConfig(tool_execution=ToolExecutionConfig(pre_approval_tool_input_guardrails=True))
    denied = agent_for(vetoed.tool(crm.tool), calling(update(tenantId="globex")))
    result = await Runner.run(denied, "Move it", context=run_context(), run_config=config)
    assert result.interruptions == []
    assert tool_outputs(denied)[0].startswith("Denied by policy [wrong_tenant]: ")
    needs = agent_for(vetoed.tool(crm.tool), calling(update(amount=9000, recordId="opp_8")))
    result = await Runner.run(needs, "Move it", context=run_context(), run_config=config)
    [pending] = vetoed.pending_approvals(result)
    assert pending.decision_id is not None
    recorded.veto.approve(pending.decision_id, APPROVER)
    agent = agent_for(vetoed.tool(crm.tool))
    state = await RunState.from_string(agent, result.to_state().to_string())
    for restored in vetoed.pending_approvals(state):
        state.approve(restored.item)
    await Runner.run(agent, state, run_config=config)
    assert tool_outputs(agent) == ["updated opp_8"]
    assert crm.runs == [update(amount=9000, recordId="opp_8")]


async def test_the_context_is_the_applications_never_the_models(recorded: Recorded) -> None:
    crm = Crm()
    claimed = update(amount=100, actorId="agent:billing-bot", context={"actorId": "agent:billing-bot", "tenantId": "initech"})
    agent = agent_for(governed(recorded).tool(crm.tool), calling(claimed))
    await Runner.run(agent, "Move it", context=run_context())
    [decision] = recorded.decisions()
    assert decision["input"]["context"] == {**APP_CONTEXT, "reason": claimed["reason"]}
    assert "reason" not in decision["input"]["arguments"]
    assert decision["actor_id"] == APP_CONTEXT["actorId"]


async def test_two_calls_in_one_turn_each_decided_and_paused_on_its_own(recorded: Recorded) -> None:
    crm = Crm()
    vetoed = governed(recorded)
    calls = [update(amount=100, recordId="opp_x"), update(amount=9000, recordId="opp_y"), update(tenantId="globex", recordId="opp_z")]
    agent = agent_for(vetoed.tool(crm.tool), calling(*calls))
    result = await Runner.run(agent, "Move them", context=run_context())
    [pending] = vetoed.pending_approvals(result)
    assert pending.call_id == "call_1" and pending.decision_id is not None
    recorded.veto.approve(pending.decision_id, APPROVER)
    resumed = await resume(vetoed, crm, result.to_state().to_string())
    assert sorted(r["recordId"] for r in crm.runs) == ["opp_x", "opp_y"]
    assert any(t.startswith("Denied by policy [wrong_tenant]") for t in tool_outputs(agent) + tool_outputs(resumed))


def test_bad_options_are_a_veto_options_error(recorded: Recorded) -> None:
    with pytest.raises(VetoOptionsError, match="veto must be"):
        VetoAgents(veto=object(), context=lambda run: APP_CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(VetoOptionsError, match="context must be a function"):
        VetoAgents(veto=recorded.veto, context="app")  # type: ignore[arg-type]
    with pytest.raises(VetoOptionsError, match="pass a FunctionTool"):
        governed(recorded).tool(lambda: None)  # type: ignore[arg-type]


async def test_a_turn_with_an_allowed_call_and_a_paused_one_runs_each_once(recorded: Recorded) -> None:
    """The allowed call runs before the turn pauses; the resumed run runs the approved one, and not the allowed one again."""
    crm = Crm()
    vetoed = governed(recorded)
    calls = [update(amount=100, recordId="opp_r"), update(amount=9000, recordId="opp_s")]
    agent = agent_for(vetoed.tool(crm.tool), calling(*calls))
    result = await Runner.run(agent, "Move them", context=run_context())
    [pending] = vetoed.pending_approvals(result)
    assert crm.runs == [calls[0]]
    assert pending.decision_id is not None
    recorded.veto.approve(pending.decision_id, APPROVER)
    # Restored in a new VetoAgents (another process): the allow kept in the state is not run again.
    resumed = await resume(governed(recorded), crm, result.to_state().to_string())
    assert "updated opp_s" in tool_outputs(resumed)
    assert crm.runs == calls
    assert [d["result"]["action"] for d in recorded.decisions()] == ["allow", "require_approval"]


async def test_arguments_edited_with_the_sdks_fingerprint_left_in_place_never_run(recorded: Recorded) -> None:
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_e"))
    recorded.veto.approve(decision_id, APPROVER)
    state = json.loads(saved)
    [function] = state["last_processed_response"]["functions"]
    function["tool_call"]["arguments"] = json.dumps(update(amount=240000, recordId="opp_e"))
    with pytest.raises(ModelBehaviorError):
        await resume(vetoed, crm, json.dumps(state))
    assert crm.runs == []
    assert recorded.approval_status(decision_id) == "approved"


async def test_an_sdk_approval_for_every_call_of_the_tool_is_no_veto_approval(recorded: Recorded) -> None:
    """state.approve(item, always_approve=True): the SDK asks nothing about later calls; Veto still decides each one."""
    crm = Crm()
    vetoed, saved, decision_id = await paused(recorded, crm, update(amount=9000, recordId="opp_s1"))
    recorded.veto.approve(decision_id, APPROVER)
    later = [update(amount=100, recordId="opp_s2"), update(tenantId="globex", recordId="opp_s3"), update(amount=8000, recordId="opp_s4")]
    agent = agent_for(vetoed.tool(crm.tool), calling(*later, ids=["call_7", "call_8", "call_9"]))
    state = await RunState.from_string(agent, saved)
    for pending in vetoed.pending_approvals(state):
        state.approve(pending.item, always_approve=True)
    await Runner.run(agent, state)
    assert crm.runs == [update(amount=9000, recordId="opp_s1"), later[0]]
    said = tool_outputs(agent)
    assert said[:2] == ["updated opp_s1", "updated opp_s2"]
    assert said[2].startswith("Denied by policy [wrong_tenant]: ")
    assert said[3].startswith("Not executed [unknown_decision]: ") and "needs its own approval" in said[3]


async def test_amended_calls_run_once_with_the_amended_input_as_decided_and_never_count(recorded: Recorded) -> None:
    """docs/contract.md §6, amend: allowed or approved, once with the amended input, saying so; denied or rejected, never; none counts."""
    from veto_crm import create_veto

    from .conftest import FIXTURE_DATA, OTHER_APPROVER, TEST_BUNDLE

    data: dict[str, Any] = json.loads(FIXTURE_DATA.read_text())
    data["veto"]["config"]["tenants"]["acme"]["approvers"] = [OTHER_APPROVER, "user:cfo@acme.example"]
    other = create_veto(TEST_BUNDLE, data=data, store=recorded.store, record_sink=recorded.sink, approval_poll_ms=10)
    ran: list[Any] = []
    try:
        cases = [("allowed", recorded.veto, 100), ("approved", recorded.veto, 8000), ("denied", recorded.veto, 10_000_000), ("rejected", other, 8000)]
        for i, (name, amender, amount) in enumerate(cases):
            asked = update(amount=9000, recordId=f"opp_am{i}")
            crm = Crm()
            vetoed, saved, decision_id = await paused(recorded, crm, asked)
            amended_args = {k: v for k, v in asked.items() if k != "reason"} | {"amount": amount}
            result = amender.amend(decision_id, APPROVER, amended_args)
            if name == "rejected":
                other.reject(result.decision.id, "user:cfo@acme.example")
            agent = await resume(governed(recorded), crm, saved)
            [text] = tool_outputs(agent)
            if name in ("allowed", "approved"):
                assert text == (
                    f"Note: the reviewer {APPROVER} amended this call's arguments before it ran (veto decision {decision_id} -> {result.decision.id}); "
                    f"it ran once with {json.dumps(amended_args, separators=(',', ':'))}, not with the arguments you gave.\nupdated opp_am{i}"
                ), text
                assert crm.runs[-1] == {**asked, "amount": amount}, name
            else:
                code = "amount_over_limit" if name == "denied" else "approval_rejected"
                assert text.startswith(f"Not executed [{code}]: "), (name, text)
            runs = len(crm.runs)
            # A second resume of the same saved state never runs it again.
            again = await resume(governed(recorded), crm, saved)
            [text_again] = tool_outputs(again)
            assert text_again.startswith("Not executed ["), text_again
            if name in ("allowed", "approved"):
                assert text_again.startswith("Not executed [already_executed]: "), text_again
            assert len(crm.runs) == runs
            ran += [r["amount"] for r in crm.runs]
        assert ran == [100, 8000]
        assert recorded.store.count_recent_denies(APP_CONTEXT["actorId"], APP_CONTEXT["tenantId"], 0) == 0
    finally:
        other.close()
