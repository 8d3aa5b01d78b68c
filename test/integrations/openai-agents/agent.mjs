// The agent of the OpenAI Agents tests, shared by the test and the process
// that restores its RunState (resume-child.mjs): the SDK's own ScriptedModel,
// a crm_update function tool that counts its executions, and Veto.
import { Agent, setTracingDisabled, tool } from "@openai/agents";
import { ScriptedModel, assistantMessage, functionCall, modelResponder } from "@openai/agents/testing";
import { z } from "zod";

setTracingDisabled(true); // no exporter: no network

/** The model: calls crm_update with the JSON of the user's message, then reports what the tool said. */
function scriptedModel() {
  let n = 0;
  const steps = Array.from({ length: 20 }, () =>
    modelResponder(({ request }) => {
      const items = typeof request.input === "string" ? [{ role: "user", content: request.input }] : request.input;
      const last = items.at(-1);
      if (last?.type === "function_call_result") {
        const output = last.output;
        return [assistantMessage(`tool said: ${typeof output === "string" ? output : (output?.text ?? JSON.stringify(output))}`)];
      }
      const user = items.findLast((i) => i.role === "user");
      n += 1;
      return [functionCall("crm_update", String(user.content), { callId: `call_${n}` })];
    }),
  );
  return new ScriptedModel(steps);
}

/** A fresh agent (as after a restart): `runs` lists every execution of the tool with its input. */
export function buildAgent(vetoAgents) {
  const runs = [];
  const crmUpdate = tool({
    name: "crm_update",
    description: "Update a CRM record",
    parameters: z.object({
      object: z.string(),
      recordId: z.string(),
      tenantId: z.string(),
      changes: z.object({ close_date: z.string() }),
      amount: z.number(),
      reason: z.string(),
    }),
    execute: async (input) => {
      runs.push(input);
      return `updated ${input.recordId}`;
    },
  });
  const agent = new Agent({ name: "crm", instructions: "Update the CRM", model: scriptedModel(), tools: [vetoAgents.tool(crmUpdate)] });
  return { agent, runs };
}
