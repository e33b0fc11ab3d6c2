#!/usr/bin/env bash
# Builds the seed corpora for the fuzz targets from the conformance cases:
#   fuzz/corpus/parse/, fuzz/corpus/roundtrip/, fuzz/corpus/oracle/
#                                               every filter (and canonical form)
#                                               of filters.jsonl and matches.jsonl
#   fuzz/corpus/roles/                          every roles, escape and
#                                               roles_to_string input
#   fuzz/corpus/{tokens,differential,store}/    left empty (structured input)
# Reads ../shared/conformance/*.jsonl when present, else tests/conformance/.
# Safe to rerun: files are named by content hash, as libFuzzer names them.
set -euo pipefail
cd "$(dirname "$0")"

if [[ -d ../../shared/conformance ]]; then
    cases=../../shared/conformance
else
    cases=../tests/conformance
fi
echo "seed.sh: reading conformance cases from $(cd "$cases" && pwd)"

python3 - "$cases" <<'PY'
import hashlib, json, os, sys

cases = sys.argv[1]

def jsonl(name):
    with open(os.path.join(cases, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]

def write(target, texts):
    out = os.path.join("corpus", target)
    os.makedirs(out, exist_ok=True)
    n = 0
    for text in dict.fromkeys(texts):
        data = text.encode("utf-8")
        path = os.path.join(out, hashlib.sha1(data).hexdigest())
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            n += 1
    print(f"seed.sh: {target}: {n} new seeds ({len(os.listdir(out))} in corpus/{target})")

filters = []
for name in ("filters.jsonl", "matches.jsonl"):
    if not os.path.exists(os.path.join(cases, name)):
        continue
    for case in jsonl(name):
        filters.append(case["filter"])
        if "canonical" in case:
            filters.append(case["canonical"])
write("parse", filters)
write("roundtrip", filters)
write("oracle", filters)

roles = []
for case in jsonl("roles.jsonl"):
    value = case["input"]
    # The roles target reads a string, and also splits it at commas into a
    # list for roles_to_string: an input list is seeded joined by commas.
    roles.append(",".join(value) if isinstance(value, list) else value)
    if isinstance(case.get("output"), str):
        roles.append(case["output"])
write("roles", roles)
write("tokens", [])
write("differential", [])
write("store", [])

# The session server's messages: one request of each method, with every
# param, wrapped around a few of the conformance filters.
def rpc(i, method, params=None):
    m = {"jsonrpc": "2.0", "id": i, "method": method}
    if params is not None:
        m["params"] = params
    return json.dumps(m)

messages = [
    rpc(1, "open", {"principal": "ops", "credentials": "x", "properties": {"Desk": "FX"},
                    "client_type": "PYTHON", "reconnect": {"session_id": "a-b", "token": "t"}}),
    rpc(2, "clients.set_properties", {"filter": "all", "properties": {"Note": None, "$Country": "fr"}}),
    rpc(3, "clients.change_roles", {"session_id": "x", "add": ["A"], "remove": ["B"]}),
    rpc(4, "clients.listen", {"filter": "all", "properties": "all", "after": 5}),
    rpc(5, "locks.acquire", {"name": "locks/a/b", "scope": "connection"}),
    rpc(6, "locks.list"),
    rpc(7, "messaging.send", {"filter": "all", "path": "alerts/x", "request": {"a": [1]}, "timeout_ms": 10}),
    rpc(8, "messaging.respond", {"id": 3, "error": "no"}),
    rpc(9, "permissions", {"path": "a/b/c"}),
    rpc(10, "clients.get_properties", {"session_id": "s", "keys": ["*U"]}),
    json.dumps([json.loads(rpc(11, "close"))]),
    json.dumps({"jsonrpc": "2.0", "method": "close"}),
]
for i, f in enumerate(filters[:50]):
    messages.append(rpc(100 + i, "clients.fetch", {"filter": f, "properties": ["*F"], "limit": 10}))
write("server_messages", messages)
PY
