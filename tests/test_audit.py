"""The dependency audit's gates (.ci/audit): a known vulnerability or a high-severity bandit
finding fails; a package no advisory service answered for is named, and fails only when strict."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("audit_report", ROOT / ".ci" / "audit_report.py")
audit_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit_report)


def report(tmp_path, *dependencies) -> str:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"dependencies": list(dependencies), "fixes": []}))
    return str(path)


def test_a_known_vulnerability_fails_and_names_the_fix(tmp_path):
    path = report(
        tmp_path,
        {"name": "django", "version": "5.2.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["5.2.1"]}]},
        {"name": "celery", "version": "5.7.0", "vulns": []},
    )
    code, lines = audit_report.decide(path, 1, "pypi", strict=False)
    assert code == 1
    assert "VULNERABLE django 5.2.0: PYSEC-1 (fixed in 5.2.1)" in lines
    assert "2 of 2 pinned packages audited, 1 vulnerable" in lines[-1]


def test_a_clean_audit_passes(tmp_path):
    path = report(tmp_path, {"name": "django", "version": "5.2.19", "vulns": []})
    assert audit_report.decide(path, 0, "osv", strict=True)[0] == 0


def test_unaudited_packages_are_named_and_fail_only_when_strict(tmp_path):
    path = report(
        tmp_path,
        {"name": "django", "version": "5.2.19", "vulns": []},
        {"name": "celery", "version": "5.7.0", "skip_reason": "Dependency not found"},
    )
    code, lines = audit_report.decide(path, 0, "pypi", strict=False)
    assert code == 0 and "NOT AUDITED: 1 packages (celery)" in lines[-1]
    assert audit_report.decide(path, 0, "pypi", strict=True)[0] == 1


def test_a_service_that_audited_nothing_lets_the_next_one_try(tmp_path):
    path = report(tmp_path, {"name": "django", "version": "5.2.19", "skip_reason": "Dependency not found"})
    assert audit_report.decide(path, 0, "pypi", strict=False)[0] == audit_report.NOTHING_AUDITED


def test_no_report_is_a_failure(tmp_path):
    assert audit_report.decide(str(tmp_path / "missing.json"), 1, "pypi", strict=False)[0] == 2


def test_bandit_fails_on_a_high_severity_finding(tmp_path):
    bandit = shutil.which("bandit", path=str(Path(sys.executable).parent))
    if bandit is None:
        pytest.fail("bandit is missing: it is a pinned dev requirement (make test installs it).")
    (tmp_path / "risky.py").write_text("import subprocess\nsubprocess.call('ls ' + input(), shell=True)\n")
    (tmp_path / "fine.py").write_text("print('hello')\n")
    arguments = ["-q", "--severity-level", "high", "--confidence-level", "low"]
    assert subprocess.run([bandit, *arguments, str(tmp_path / "risky.py")], capture_output=True).returncode == 1
    assert subprocess.run([bandit, *arguments, str(tmp_path / "fine.py")], capture_output=True).returncode == 0
