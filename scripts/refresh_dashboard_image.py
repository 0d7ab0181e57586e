"""Refresh the README's dashboard picture, ``docs/img/governance_dashboard.png``.

The dashboard test renders the same page in headless Chromium into a temporary directory
and checks it; this command is the one that writes the tracked image, when the dashboard's
look changed on purpose:

    python scripts/refresh_dashboard_image.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mpm.governance.assessment import assess_project
from mpm.governance.dashboard import write_dashboard
from mpm.governance.testing import credit_project_state

TARGET = Path(__file__).resolve().parents[1] / "docs" / "img" / "governance_dashboard.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def main() -> int:
    browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if browser is None:
        print("error: headless Chromium is not installed (apt-get install -y chromium)")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page = write_dashboard(assess_project(credit_project_state()), Path(tmp) / "d.html")
        shot = Path(tmp) / "shot.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--screenshot={shot}",
                "--window-size=1280,2000",
                page.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, TARGET)
    print(TARGET)
    return 0


if __name__ == "__main__":
    sys.exit(main())
