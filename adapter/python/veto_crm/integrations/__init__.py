"""
Agent framework integrations (docs/python.md "Integrations"). Each framework
lives in its own module and is imported only when that module is:

- ``veto_crm.integrations.langgraph``: a LangGraph ``ToolNode`` wrapper;
  ``interrupt()`` pauses, ``Command(resume=...)`` resumes
  (``pip install 'veto-crm[langgraph]'``);
- ``veto_crm.integrations.openai_agents``: OpenAI Agents SDK function tools
  with ``needs_approval`` and a tool input guardrail
  (``pip install 'veto-crm[openai-agents]'``).

``veto_crm.integrations.gate`` is what they share; it imports no framework,
and neither does the core package.
"""
