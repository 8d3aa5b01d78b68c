import type { Agent } from "@openai/agents";
import type { VetoAgents } from "../../../adapter/integrations/openai-agents/index.js";

export function buildAgent(vetoAgents: VetoAgents): { agent: Agent<unknown, "text">; runs: Record<string, unknown>[] };
