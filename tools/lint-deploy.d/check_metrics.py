"""Checks that deploy/monitoring uses only metrics the binary exports.

The exported names are the `label:` strings in Sources/Stream/StreamMetrics.swift. A Timer
(or Recorder) is a histogram in the Prometheus backend, so only those may also be used with
`_bucket`, `_sum` or `_count`. Every PromQL expression in alerts.yaml (rules' `expr`) and
dashboard.json (any `expr` key) is scanned; any other metric name fails the check, named with
the file and the alert or panel that uses it. Also checks the rule file's shape.

Usage: check_metrics.py METRICS_SWIFT ALERTS_YAML DASHBOARD_JSON   (exit 1 on any problem)
"""
import json
import re
import sys

import yaml

FUNCTIONS_AND_KEYWORDS = {
    # aggregation operators and keywords
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio", "by", "without", "on", "ignoring", "group_left",
    "group_right", "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_metrics(swift_path):
    text = open(swift_path, encoding="utf-8").read()
    names, histograms = set(), set()
    for m in re.finditer(r'\b(Counter|Gauge|Timer|Recorder|FloatingPointCounter|Meter)\s*\(\s*label:\s*"([^"]+)"', text):
        kind, name = m.group(1), m.group(2)
        names.add(name)
        if kind in ("Timer", "Recorder"):
            histograms.add(name)
    if not names:
        raise SystemExit(f"{swift_path}: no metric labels found (has the file changed shape?)")
    return names, histograms


def metric_names_in(expr):
    """Identifiers in a PromQL expression that stand for metric names."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)   # string literals
    e = re.sub(r"\{[^}]*\}", "", e)                                      # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                                     # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)  # label lists
    e = re.sub(r"\$\{?\w+\}?", "", e)                                     # Grafana variables
    found = []
    for m in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)\b(\s*\()?", e):
        ident, call = m.group(1), m.group(2)
        if call:            # a function call such as rate( or histogram_quantile(
            continue
        if ident in FUNCTIONS_AND_KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", ident):
            continue
        found.append(ident)
    return found


def known(name, names, histograms):
    if name in names:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return True
    return False


def main(swift_path, alerts_path, dashboard_path):
    names, histograms = exported_metrics(swift_path)
    problems, used = [], set()

    def check(where, expr):
        for name in metric_names_in(expr):
            used.add(name)
            if not known(name, names, histograms):
                problems.append(f"{where}: unknown metric '{name}' (not exported by {swift_path})")

    rules = yaml.safe_load(open(alerts_path, encoding="utf-8"))
    if not isinstance(rules, dict) or not isinstance(rules.get("groups"), list):
        problems.append(f"{alerts_path}: expected a top-level 'groups' list")
    else:
        for group in rules["groups"]:
            for rule in group.get("rules") or []:
                label = rule.get("alert") or rule.get("record")
                if not label or "expr" not in rule:
                    problems.append(f"{alerts_path}: group {group.get('name')}: a rule without alert/record name or expr")
                    continue
                extra = set(rule) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
                if extra:
                    problems.append(f"{alerts_path}: {label}: unknown keys {sorted(extra)}")
                if rule.get("alert") and not (rule.get("labels") or {}).get("severity"):
                    problems.append(f"{alerts_path}: {label}: no severity label")
                check(f"{alerts_path}: alert {label}", str(rule["expr"]))

    dashboard = json.load(open(dashboard_path, encoding="utf-8"))

    def walk(node, title):
        if isinstance(node, dict):
            title = node.get("title", title)
            if isinstance(node.get("expr"), str):
                check(f"{dashboard_path}: panel '{title}'", node["expr"])
            for value in node.values():
                walk(value, title)
        elif isinstance(node, list):
            for value in node:
                walk(value, title)

    walk(dashboard, "?")

    for problem in problems:
        print(problem, file=sys.stderr)
    base = {n for n in used if n in names} | {n[: -len(s)] for n in used for s in HISTOGRAM_SUFFIXES if n.endswith(s)}
    print(f"metric names: {len(used)} distinct names used, {len(base & names)} of {len(names)} exported metrics covered, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    sys.exit(main(*sys.argv[1:]))
