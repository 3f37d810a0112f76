"""Browser tests keep a screenshot of the page where a test failed."""

from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        page = item.funcargs.get("page")
        shots = item.funcargs.get("shots")
        if page is not None and shots is not None:
            try:
                page.screenshot(path=shots / f"failed-{item.name}.png")
            except Exception:  # the page may be gone; the report is what matters
                pass
