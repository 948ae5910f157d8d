"""Headless Chromium for the page tests: the OS package (`chromium`; CI installs it), run once per page."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
               None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on this machine (install the OS "
                                                           "package 'chromium': apt-get install chromium)")


def rendered_dom(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (fetches included, up to 20 s of virtual time)."""
    result = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", url],
                            capture_output=True, text=True, timeout=120)
    assert 'data-done="1"' in result.stdout, result.stderr[-2000:]
    return result.stdout
