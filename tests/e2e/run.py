"""Run every tests/e2e/test_*.py; one "ok"/"not ok" line per test. TEST_ONLY=word filters.
A module in PENDING tests a feature not built yet: it runs only when TEST_ONLY names it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PENDING = set()
only = os.environ.get("TEST_ONLY", "")
names = sorted(f[:-3] for f in os.listdir(harness.HERE) if f.startswith("test_") and f.endswith(".py"))
names = [n for n in names if n not in PENDING or n in only]
sys.exit(harness.main(names))
