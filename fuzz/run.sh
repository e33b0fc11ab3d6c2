#!/usr/bin/env bash
# Runs one fuzz target for a while, seeding its corpus first if it is empty.
#   fuzz/run.sh TARGET SECONDS [more libFuzzer flags…]
# Targets: parse, roundtrip, roles, tokens, differential, store, standing, oracle, server_messages.
# Needs `cargo install cargo-fuzz`
# and a nightly toolchain. One job, so it shares the machine politely.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags…]}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer flags…]}
shift 2
if [[ ! -d fuzz/corpus/$target ]]; then
    bash fuzz/seed.sh
fi
exec cargo +nightly fuzz run "$target" -- \
    -max_total_time="$seconds" -dict=fuzz/filter.dict -timeout=10 "$@"
