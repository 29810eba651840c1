#!/usr/bin/env bash
# `make rehearsal`: the paper's chain at toy size, offline, the way a cluster runs it
# (tests/config/rehearsal.yaml). Weights come once from a local hub; then the whole DAG runs
# with HF_ENDPOINT on a closed port, so a job that reached for the hub would fail. Work lives
# under resources/rehearsal and results/rehearsal (ignored); a second run reuses what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
CONFIG=tests/config/rehearsal.yaml
WORK=resources/rehearsal
HUB=$WORK/hub
RESULTS=results/rehearsal
OPENAI_PORT=18765 # captions.base_url in $CONFIG
# --configfile takes several files: it goes last.
smk() { "$BIN/snakemake" "$@" --configfile "$CONFIG"; }
mkdir -p "$WORK" "$RESULTS"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_ready() { # ready-file pid
  for _ in $(seq 300); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "server $2 died" >&2; return 1; }
    sleep 0.2
  done
  echo "timed out waiting for $1" >&2
  return 1
}
start=$(date +%s)

echo "== 1. fixture ImageNet tree and hub root"
"$BIN/python" tests/make_imagenet_fixture.py --root "$WORK/ILSVRC2012" --train 4 --val 1 # splits train 3 + val 1 from train/, test 1 from val/
[ -s "$HUB/hub.json" ] || "$BIN/python" tests/hub_server.py --root "$HUB" --build-config "$CONFIG"

echo "== 2. snakemake weights from the local hub"
rm -f "$HUB/ready"
"$BIN/python" tests/hub_server.py --root "$HUB" --port 0 --ready-file "$HUB/ready" --quiet &
pids+=($!)
wait_ready "$HUB/ready" $!
HF_ENDPOINT=$(cat "$HUB/ready") smk weights --cores 1
kill "${pids[-1]}" && wait "${pids[-1]}" 2>/dev/null || true

echo "== 3. the OpenAI-compatible caption server (batch API, dummy key)"
export OPENAI_API_KEY=sk-rehearsal-dummy-key
rm -f "$WORK/openai.ready"
"$BIN/python" tests/fake_openai_server.py --port $OPENAI_PORT --ready-file "$WORK/openai.ready" &
pids+=($!)
wait_ready "$WORK/openai.ready" $!

echo "== 4. the whole DAG, the hub on a closed port"
export HF_ENDPOINT=http://127.0.0.1:9
smk all --profile profiles/local
smk all --profile profiles/local --report "$RESULTS/report.html"

echo "== 5. servers stopped"
cleanup
pids=()

echo "== 6. nothing left to do"
smk -n all >"$WORK/dryrun.txt" 2>&1
grep -q "Nothing to be done" "$WORK/dryrun.txt" || { cat "$WORK/dryrun.txt"; exit 1; }

echo "== 7. every rule of the paper's dry run ran here"
"$BIN/snakemake" -n all --configfile config/config.yaml >"$WORK/paper_dryrun.txt" 2>&1
smk -n --forceall all >"$WORK/forceall_dryrun.txt" 2>&1
"$BIN/python" tests/rehearsal_rules.py "$WORK/paper_dryrun.txt" "$WORK/forceall_dryrun.txt"
echo "rehearsal passed in $(($(date +%s) - start)) s"
