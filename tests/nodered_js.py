"""benthos-umh's `nodered_js` processor with node standing in for goja: runs a rendered script on messages.

There is no benthos binary here. What the processor does around the script is small and is mirrored from
nodered_js_plugin/nodered_js_plugin.go in the benthos-umh repository:
- newNodeREDJSProcessor wraps the code as `(function(){ 'use strict'; <code> })()`;
- processSingleMessage gives each message a clean VM with a global `msg` = {payload: the message parsed as JSON, or
  its text when it is not JSON (ConvertMessageToJSObject), meta: its metadata} and a `console` logging to benthos;
- HandleExecutionResult drops the message on null/undefined, and messageFromReturnValue makes a returned object the
  new message: its payload (set structured, so serialised as JSON on output) and the string values of its meta.
node then runs the real rendered script text; benthos runs it in goja, which implements the ES5.1 and ES6 subset
the script uses (const/let, for-of, typeof, isFinite, Number.prototype.toPrecision, JSON, Date.now).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

NODE = shutil.which("node")

_HARNESS = r"""
const vm = require("vm");
const jobs = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = [];
for (const job of jobs) {
  const script = new vm.Script("(function(){\n'use strict';\n" + job.code + "\n})()", { filename: "nodered-fn.js" });
  for (const message of job.messages) {
    const logs = [];
    const log = (level) => (...args) => logs.push(level + ": " + args.map(String).join(" "));
    let payload;
    try { payload = JSON.parse(message.body); } catch (e) { payload = message.body; }
    const context = vm.createContext({
      msg: { payload: payload, meta: Object.assign({}, message.meta) },
      console: { debug: log("debug"), log: log("info"), info: log("info"), warn: log("warn"), error: log("error") },
    });
    const result = script.runInContext(context);
    if (result === null || result === undefined) {
      out.push({ dropped: true, logs: logs });
      continue;
    }
    const meta = {};
    for (const [key, value] of Object.entries(result.meta || {})) {
      if (typeof value === "string") meta[key] = value;
    }
    out.push({ dropped: false, body: JSON.stringify(result.payload), meta: meta, logs: logs });
  }
}
process.stdout.write(JSON.stringify(out));
"""


@dataclass(frozen=True)
class Message:
    body: bytes
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    dropped: bool
    logs: list[str]
    body: bytes = b""
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


def run(jobs: list[tuple[str, list[Message]]]) -> list[list[Result]]:
    """For each (script, messages): what the processor emits per message, in one node process."""
    assert NODE is not None, "node is missing"
    request = [
        {"code": code, "messages": [{"body": m.body.decode(), "meta": m.meta} for m in msgs]} for code, msgs in jobs
    ]
    proc = subprocess.run(
        [NODE, "-e", _HARNESS], input=json.dumps(request), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    flat = iter(json.loads(proc.stdout))
    results = []
    for _, messages in jobs:
        batch = []
        for _ in messages:
            r = next(flat)
            batch.append(Result(r["dropped"], r["logs"], r.get("body", "").encode(), r.get("meta", {})))
        results.append(batch)
    return results
