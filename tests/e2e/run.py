"""Run every tests/e2e/test_*.py; one "ok"/"not ok" line per test. TEST_ONLY=word filters."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

names = sorted(f[:-3] for f in os.listdir(harness.HERE) if f.startswith("test_") and f.endswith(".py"))
sys.exit(harness.main(names))
