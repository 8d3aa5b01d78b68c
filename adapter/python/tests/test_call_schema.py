"""
``received``, the one name for what a check received, is zod's: the call
schema and the policy data checks both word their invalid_type messages
with it, as the TypeScript adapter's zod schemas do. Compared with zod's own
message, run by node from the repository's node_modules.
"""

from __future__ import annotations

import json
import math
import subprocess
from typing import Any

from veto_crm.call_schema import received

from .conftest import ROOT

# What JSON text cannot carry (NaN, the infinities) is built on the node side by name.
VALUES: list[tuple[str, Any]] = [
    ("null", None),
    ("true", True),
    ("0", 0),
    ("1.5", 1.5),
    ("NaN", math.nan),
    ("Infinity", math.inf),
    ("-Infinity", -math.inf),
    ('"text"', "text"),
    ("[]", []),
    ("{}", {}),
]

ZOD = """
const { z } = require("zod");
const out = JSON.parse(process.argv[1]).map((text) => {
  const value = text === "NaN" ? NaN : text === "Infinity" ? Infinity : text === "-Infinity" ? -Infinity : JSON.parse(text);
  const issue = z.string().safeParse(value).error?.issues[0] ?? z.number().safeParse(value).error?.issues[0];
  return issue.message.replace(/^.*received /, "");
});
console.log(JSON.stringify(out));
"""


def test_received_names_what_zod_names() -> None:
    texts = [text for text, _ in VALUES]
    zod = json.loads(subprocess.run(["node", "-e", ZOD, json.dumps(texts)], cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    assert [received(value) for _, value in VALUES] == zod
