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
PY
