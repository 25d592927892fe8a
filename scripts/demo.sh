#!/usr/bin/env bash
# make demo: the whole product on a sample portfolio, ending with the scoring service running.
# Steps 1-8 run the commands of dvc.yaml's stages (tests/foundation/test_pipeline_files.py
# checks it), so `make demo` and `dvc repro` write the same files in the same places; the
# portfolio size and seed come from params.yaml (generate:).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RG=.venv/bin/riskgrade
PORT=${DEMO_PORT:-3000}
AS_OF=2025-12-31             # params.yaml generate.end
PREVIOUS_QUARTER=2025-09-30  # dvc.yaml vars: previous_quarter
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Sample portfolio (params.yaml generate:) -> data/raw"
$RG generate --out data/raw
step "2. Validate the raw-data contract -> reports/validate.txt"
mkdir -p reports && $RG validate data/raw --as-of $AS_OF > reports/validate.txt
cat reports/validate.txt
step "3. Portfolio summary"
$RG describe data/raw --as-of "$AS_OF"
step "4. Point-in-time features and the training set -> data/features"
$RG features build --raw data/raw --out data/features && $RG features report data/features
step "5. Train LightGBM + scorecard challenger, calibrate, validate, register in MLflow -> reports/"
$RG train --dataset data/features --truth data/raw/_truth --out reports
step "6. Promote to champion when every gate passes"
# A second `make demo` may train a model that does not beat the champion already registered:
# promotion then refuses (naming the gate) and the champion in place keeps serving.
$RG promote || echo "promotion refused: the registered champion keeps serving"
step "7. Rate the whole portfolio at $AS_OF -> reports/ratings.parquet"
$RG score --raw data/raw --as-of $AS_OF --bundle reports/bundle --out reports/ratings.parquet

step "8. Monitoring: re-rate at two quarter ends, migration, drift and the early-warning list"
$RG monitor --raw data/raw --as-of $PREVIOUS_QUARTER --bundle reports/bundle --store data/monitoring.duckdb --out reports/monitoring/$PREVIOUS_QUARTER > /dev/null
$RG monitor --raw data/raw --as-of $AS_OF --bundle reports/bundle --store data/monitoring.duckdb --out reports/monitoring/$AS_OF

step "8b. Stress test: the shipped recession scenario against the unstressed base at $AS_OF"
$RG stress --raw data/raw --as-of $AS_OF --bundle reports/bundle --scenario recession --out reports/stress/recession

step "9. Serve the champion on http://127.0.0.1:$PORT"
if [ -f data/serve.pid ] && kill -0 "$(cat data/serve.pid)" 2>/dev/null; then
  kill "$(cat data/serve.pid)" && sleep 2
fi
$RG token revoke demo-scorer >/dev/null 2>&1 || true
TOKEN=$($RG token create --name demo-scorer --role scorer 2>/dev/null | tail -n 1)
CUSTOMER=$(.venv/bin/python -c "import pandas as pd; r = pd.read_parquet('reports/ratings.parquet'); print(r.loc[r.tier == 'high', 'customer_id'].iloc[0])")
$RG request-example --raw data/raw --customer "$CUSTOMER" --as-of "$AS_OF" > data/request.json
nohup $RG serve --port "$PORT" > data/serve.log 2>&1 &
echo $! > data/serve.pid
for _ in $(seq 1 90); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 1
done
curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "service did not become ready; see data/serve.log"; exit 1; }
echo "service ready (pid $(cat data/serve.pid), log data/serve.log); stop it with: make stop"
echo
echo "\$ curl -s -X POST http://127.0.0.1:$PORT/score -H 'Authorization: Bearer <scorer token>' \\"
echo "       -H 'Content-Type: application/json' --data @data/request.json   # customer $CUSTOMER"
curl -s -X POST "http://127.0.0.1:$PORT/score" -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' --data @data/request.json | .venv/bin/python -m json.tool

step "10. From an early warning to an approved suspension (four eyes)"
# The monitor records its warnings in the audit chain and proposes the stricter statuses they
# call for; a person confirms each one (suspension and exit need an approver).
$RG monitor --raw data/raw --as-of $AS_OF --bundle reports/bundle --store data/monitoring.duckdb \
  --record --rows 5 | grep -E "^audit chain|^report:"
for who in demo-analyst demo-approver; do $RG token revoke "$who" >/dev/null 2>&1 || true; done
ANALYST=$($RG token create --name demo-analyst --role analyst 2>/dev/null | tail -n 1)
APPROVER=$($RG token create --name demo-approver --role approver 2>/dev/null | tail -n 1)
read -r CHANGE WARNED TARGET < <(curl -s "http://127.0.0.1:$PORT/status-changes?status=pending" \
  -H "Authorization: Bearer $ANALYST" | .venv/bin/python -c '
import json, sys
changes = json.load(sys.stdin)["status_changes"]
ranked = sorted(changes, key=lambda c: c["payload"]["to"] != "suspended")
print(*((ranked[0]["proposal_id"], ranked[0]["subject"], ranked[0]["payload"]["to"]) if ranked else ("-", "-", "-")))
')
if [ "$CHANGE" = "-" ]; then
  echo "no status change proposed by this run"
else
  echo "monitor proposed: customer $WARNED -> $TARGET (change $CHANGE)"
  echo "\$ curl -s http://127.0.0.1:$PORT/customers/$WARNED/warnings   # why"
  curl -s "http://127.0.0.1:$PORT/customers/$WARNED/warnings" -H "Authorization: Bearer $ANALYST" \
    | .venv/bin/python -c 'import json,sys; w=json.load(sys.stdin)["warnings"][0]; print(w["severity"], w["action"], *w["details"], sep="\n  ")'
  DECISION='{"comment": "confirmed after the call with the customer"}'
  if [ "$TARGET" = suspended ] || [ "$TARGET" = exiting ]; then
    echo "an analyst may not confirm a change to $TARGET (four eyes: an approver must):"
    curl -s -X POST "http://127.0.0.1:$PORT/status-changes/$CHANGE/approve" -H "Authorization: Bearer $ANALYST" \
      -H 'Content-Type: application/json' --data "$DECISION" | .venv/bin/python -m json.tool
  fi
  echo "the approver confirms it:"
  curl -s -X POST "http://127.0.0.1:$PORT/status-changes/$CHANGE/approve" -H "Authorization: Bearer $APPROVER" \
    -H 'Content-Type: application/json' --data "$DECISION" \
    | .venv/bin/python -c 'import json,sys; d=json.load(sys.stdin); print(" ", d["status"], "by", d["decided_by"])'
  curl -s "http://127.0.0.1:$PORT/customers/$WARNED/status" -H "Authorization: Bearer $ANALYST" | .venv/bin/python -m json.tool
  echo "customer page: http://127.0.0.1:$PORT/review/customer?customer=$WARNED"
fi
