#!/usr/bin/env bash
# Security checks (issue 17), run by .ci/run after lint; run alone with `bash .ci/security.sh`.
#   ruff S rules   flake8-bandit over the whole tree (pyproject.toml): any finding fails
#   bandit         apps/ portal/ portal_client/ scripts/ bench/: a HIGH severity finding fails,
#                  medium and low ones are printed (report: var/security/bandit.json)
#   detect-secrets every tracked file against the audited .secrets.baseline: a secret that is not
#                  in the baseline, or a baseline entry not audited as a false positive, fails
#   SBOM           CycloneDX 1.6 JSON of requirements.txt's pins: var/sbom.cdx.json
# The tools live in their own virtualenv, .venv-security: CI tools, not portal dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECURITY_TOOLS=(bandit==1.9.4 detect-secrets==1.5.0 cyclonedx-bom==7.5.0)
SECURITY_VENV=.venv-security
BANDIT_TARGETS=(apps portal portal_client scripts bench)
SECURITY_REPORTS=var/security
SBOM_FILE=var/sbom.cdx.json

security_fail() {
  echo "SECURITY CHECK FAILED: $*" >&2
  exit 1
}

security_venv() {
  local stamp=$SECURITY_VENV/.tools
  if [ ! -x "$SECURITY_VENV/bin/python" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "${SECURITY_TOOLS[*]}" ]; then
    echo "[security] installing ${SECURITY_TOOLS[*]} into $SECURITY_VENV"
    python3 -m venv "$SECURITY_VENV"
    "$SECURITY_VENV/bin/pip" install -q --disable-pip-version-check "${SECURITY_TOOLS[@]}" \
      || security_fail "could not install ${SECURITY_TOOLS[*]} into $SECURITY_VENV"
    echo "${SECURITY_TOOLS[*]}" >"$stamp"
  fi
}

security_ruff() {
  .venv/bin/ruff check --select S --quiet . \
    || security_fail "ruff's security rules (S) found the issues above: fix them, or add a line-level '# noqa: Sxxx  <why it is safe>'"
  local reviewed
  reviewed=$({ git grep -c -E '# noqa: ([A-Z0-9]+, )*S[0-9]{3}' -- '*.py' || true; } | awk -F: '{n += $NF} END {print n + 0}')
  echo "ruff S rules: no finding ($reviewed lines carry a reviewed '# noqa: S...')"
}

security_bandit_run() {
  # --exit-zero: the verdict is security_bandit_report's; bandit failing to run still fails.
  "$SECURITY_VENV/bin/bandit" -c pyproject.toml -r "${BANDIT_TARGETS[@]}" -q -f json \
    -o "$SECURITY_REPORTS/bandit.json" --exit-zero
}

security_bandit_report() {
  python3 - "$SECURITY_REPORTS/bandit.json" <<'PY' || security_fail "bandit: HIGH severity findings or unscanned files (listed above); fix them or mark a false positive '# nosec BXXX  <why>'"
import json, sys
from collections import Counter

report = json.load(open(sys.argv[1]))
order = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}
found = sorted(report["results"], key=lambda r: (order[r["issue_severity"]], r["filename"], r["line_number"]))
for r in found:
    print(f"  {r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_severity']}/{r['issue_confidence']} {r['issue_text']}")
for e in report["errors"]:
    print(f"  could not scan {e['filename']}: {e['reason']}")
counts = Counter(r["issue_severity"] for r in found)
files = len({r["filename"] for r in found})
print(f"bandit: {counts['HIGH']} high, {counts['MEDIUM']} medium, {counts['LOW']} low in {files} files"
      f" ({len(report['errors'])} unscanned; HIGH fails CI; report {sys.argv[1]})")
sys.exit(1 if counts["HIGH"] or report["errors"] else 0)
PY
}

security_secrets() {
  # detect-secrets' documented full scan: detect-secrets-hook --baseline .secrets.baseline <tracked files>,
  # here in a few parallel chunks. Each chunk runs on its own copy of the baseline: when only line
  # numbers moved the hook rewrites its baseline and exits 3, which must neither fail CI nor touch
  # the tracked file. Exit 1: a possible secret that is not in the baseline.
  local files=() f i code=0 chunks size pids=()
  [ -f .secrets.baseline ] || security_fail "detect-secrets: .secrets.baseline is missing (docs/DEVELOPING.md says how to make it)"
  while IFS= read -r -d '' f; do [ -f "$f" ] && files+=("$f"); done < <(git ls-files -z -- . ':(exclude).secrets.baseline')
  chunks=$(nproc 2>/dev/null || echo 2)
  chunks=$((chunks > 4 ? 4 : chunks))
  size=$(((${#files[@]} + chunks - 1) / chunks))
  for ((i = 0; i < chunks; i++)); do
    cp .secrets.baseline "$SECURITY_REPORTS/secrets.$i.baseline"
    "$SECURITY_VENV/bin/detect-secrets-hook" --baseline "$SECURITY_REPORTS/secrets.$i.baseline" \
      "${files[@]:$((i * size)):size}" >"$SECURITY_REPORTS/detect-secrets.$i.txt" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < chunks; i++)); do
    local one=0
    wait "${pids[i]}" || one=$?
    if [ "$one" != 0 ] && [ "$one" != 3 ]; then
      cat "$SECURITY_REPORTS/detect-secrets.$i.txt"
      code=1
    elif [ "$one" = 3 ] && [ "$code" = 0 ]; then
      code=3
    fi
  done
  case $code in
    0) ;;
    3) echo "  (line numbers in .secrets.baseline are out of date: harmless; refresh them with" \
         "'$SECURITY_VENV/bin/detect-secrets scan --baseline .secrets.baseline')" ;;
    *) security_fail "detect-secrets: a possible secret that is not in .secrets.baseline (listed above). Remove it" \
         "(and rotate it if it was real), or if it is a false positive add it to the baseline and audit it" \
         "(docs/DEVELOPING.md, 'Security checks in CI')" ;;
  esac
  python3 - <<'PY' || security_fail "detect-secrets: .secrets.baseline holds entries that are not audited as false positives (listed above); run '$SECURITY_VENV/bin/detect-secrets audit .secrets.baseline'"
import json, sys

results = json.load(open(".secrets.baseline"))["results"]
entries = [(name, s) for name, found in results.items() for s in found]
bad = [(name, s) for name, s in entries if s.get("is_secret") is not False]
for name, s in bad:
    state = "audited as a REAL secret" if s.get("is_secret") else "not audited"
    print(f"  {name}:{s['line_number']}: {s['type']}: {state}")
sys.exit(1 if bad else 0)
PY
  local audited
  audited=$(python3 -c 'import json; print(sum(map(len, json.load(open(".secrets.baseline"))["results"].values())))')
  echo "detect-secrets: ${#files[@]} tracked files, no new secret (baseline: $audited audited false positives)"
}

security_sbom_run() {
  # Reproducible (no random serial number), stamped with the last commit's time.
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s) PYTHONWARNINGS=ignore::UserWarning \
    "$SECURITY_VENV/bin/cyclonedx-py" requirements requirements.txt --pyproject pyproject.toml \
    --of JSON --sv 1.6 --output-reproducible -o "$SBOM_FILE"
}

security_sbom_report() {
  python3 - "$SBOM_FILE" <<'PY' || security_fail "the SBOM $SBOM_FILE does not list every pin of requirements.txt"
import json, re, sys

bom = json.load(open(sys.argv[1]))
pins = [l for l in open("requirements.txt").read().splitlines() if re.match(r"^[A-Za-z0-9]", l)]
listed = len(bom.get("components", []))
print(f"SBOM: {listed} components of {len(pins)} pins, CycloneDX {bom['specVersion']} JSON: {sys.argv[1]}")
sys.exit(0 if listed == len(pins) else 1)
PY
}

security_checks() {
  local started=$SECONDS bandit_pid sbom_pid code
  mkdir -p "$SECURITY_REPORTS"
  security_venv
  security_ruff
  # bandit and the SBOM run while detect-secrets scans; each is reported in turn.
  security_bandit_run >"$SECURITY_REPORTS/bandit.log" 2>&1 &
  bandit_pid=$!
  security_sbom_run >"$SECURITY_REPORTS/sbom.log" 2>&1 &
  sbom_pid=$!
  security_secrets
  code=0 && wait "$bandit_pid" || code=$?
  [ "$code" = 0 ] || { cat "$SECURITY_REPORTS/bandit.log"; security_fail "bandit could not run (exit $code, see above)"; }
  security_bandit_report
  code=0 && wait "$sbom_pid" || code=$?
  [ "$code" = 0 ] || { cat "$SECURITY_REPORTS/sbom.log"; security_fail "cyclonedx-py could not build the SBOM of requirements.txt (exit $code, see above)"; }
  security_sbom_report
  echo "security checks passed in $((SECONDS - started))s"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  security_checks
fi
