"""Reads pip-audit's JSON report and decides the audit: exit 1 on any known vulnerability.

Usage: audit_report.py REPORT PIP_AUDIT_STATUS SERVICE. A package the advisory service
could not answer for is "not audited": reported by name, a failure only with AUDIT_STRICT=1
(a machine that reaches only a package index gets no advisory data; `make audit` run where
an advisory source answers does the real audit). Exit 3 says that the service audited
nothing at all, so the next service may be tried.
"""

import json
import os
import sys

NOTHING_AUDITED = 3


def decide(report_path: str, status: int, service: str, strict: bool) -> tuple[int, list[str]]:
    lines: list[str] = []
    try:
        with open(report_path) as report:
            dependencies = json.load(report)["dependencies"]
    except (OSError, ValueError, KeyError):
        return 2, [f"pip-audit ({service}) failed (exit {status}) without a report: see its output above."]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    unaudited = [d for d in dependencies if d.get("skip_reason")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            lines.append(f"VULNERABLE {dependency['name']} {dependency['version']}: {vuln['id']} (fixed in {fixed})")
    audited = len(dependencies) - len(unaudited)
    lines.append(
        f"pip-audit ({service}): {audited} of {len(dependencies)} pinned packages audited, {len(vulnerable)} vulnerable."
    )
    if vulnerable:
        return 1, lines
    if status and not unaudited:
        return 1, lines
    if unaudited:
        names = ", ".join(d["name"] for d in unaudited[:8]) + (", …" if len(unaudited) > 8 else "")
        lines.append(
            f"NOT AUDITED: {len(unaudited)} packages ({names}): the advisory service did not answer for their "
            f"pinned versions ({unaudited[0]['skip_reason']}). Run `make audit` where it does; "
            "AUDIT_STRICT=1 turns this into a failure."
        )
        if not audited:
            return NOTHING_AUDITED, lines
        return (1 if strict else 0), lines
    return 0, lines


if __name__ == "__main__":
    code, output = decide(sys.argv[1], int(sys.argv[2]), sys.argv[3], os.environ.get("AUDIT_STRICT") == "1")
    print("\n".join(output))
    sys.exit(code)
