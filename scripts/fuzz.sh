#!/usr/bin/env bash
# scripts/fuzz.sh — what `make fuzz` runs: every fuzz target of the module,
# one after the other, for FUZZTIME each (default 30s). `make test` runs
# only their seed corpora. A failing input is written to the package's
# testdata/fuzz/<target>/; commit it with the fix, and `make test` keeps
# checking it. FUZZ narrows the targets to those matching a regexp.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
FUZZ=${FUZZ:-.}
failed=0
for pkg in $(go list ./...); do
  for name in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' | grep -E "$FUZZ" || true); do
    echo "== $pkg $name ($FUZZTIME)"
    # -fuzzminimizetime bounds the minimizing of each new input, which
    # for large seeds (the rule pack) otherwise stalls the run.
    if ! go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 10s "$pkg"; then
      failed=1
    fi
  done
done
exit $failed
