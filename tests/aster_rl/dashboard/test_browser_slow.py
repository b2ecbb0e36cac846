"""The dashboard in a real browser: a paper replay of a tiny trained run (``aster-rl live run
--replay``) and ``aster-rl dashboard`` as two processes on one database; headless Chromium
opens the page, the decision card must advance twice and match the stored row, show the
tentacles' effects on P(side), the Parity tab must show the backtester's comparison, with no
console error (a CSP violation included). The screenshot goes to the test's tmp dir, and
to ``reports/dashboard.png`` when ``ASTER_DASHBOARD_SCREENSHOT=1``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aster_rl.storage import Database, live_store
from tiny_runs import tiny_trained_run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[3]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    pytest.importorskip("playwright")
    pytest.importorskip("fastapi")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(config_file: Path, *args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "aster_rl.cli", "--config", str(config_file), *args], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_page_follows_a_paper_replay(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    cfg, config_file, run_dir, _ = tiny_trained_run(tmp_path, "dash", live={"stale_after_bars": 1e9, "max_model_age_days": 1e9})
    port = _free_port()
    replay = _cli(config_file, "live", "run", "--run", str(run_dir), "--replay", "--pace", "1.0", "--max-bars", "120",
                  "--session", "browser", log=tmp_path / "replay.log")
    dash = _cli(config_file, "dashboard", "--port", str(port), log=tmp_path / "dashboard.log")
    db = Database(cfg.data.resolved_database_url())
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (tmp_path / "data" / "dashboard.token").exists():
            assert dash.poll() is None, (tmp_path / "dashboard.log").read_text()
            time.sleep(0.2)
        token = (tmp_path / "data" / "dashboard.token").read_text().strip()
        assert token not in (tmp_path / "dashboard.log").read_text()  # the terminal shows the file, not the token
        errors: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            for _ in range(100):  # the server needs a moment after writing the token
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:
                    time.sleep(0.3)
            card = page.locator("#decision-side")
            page.wait_for_function("() => document.querySelector('#decision-side').dataset.id", timeout=120_000)
            seen = [int(card.get_attribute("data-id") or 0)]
            while len(seen) < 3:  # the card advances twice
                page.wait_for_function(f"() => Number(document.querySelector('#decision-side').dataset.id) > {seen[-1]}",
                                       timeout=60_000)
                seen.append(int(card.get_attribute("data-id") or 0))
            shown_id, shown_side = int(card.get_attribute("data-id") or 0), card.inner_text()
            shown_time = page.locator("#decision-time").inner_text()
            assert page.locator("#conn").inner_text() == "connected"
            assert "STALE" not in page.locator("#age").inner_text()
            assert "gate" in page.locator("#gate").inner_text() and "run dash" in page.locator("#run").inner_text()
            assert page.locator("#chart canvas").count() > 0
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            # why this action: one bar per tentacle under the decision
            assert page.locator("#effects li").count() > 1 and page.locator("#effects-line").inner_text().startswith("why: ")
            # parity: the backtester on the same bars, computed on request
            page.locator("nav button[data-tab=parity]").click()
            page.wait_for_function("() => document.querySelector('#parity').textContent.includes('bars compared')",
                                   timeout=120_000)
            compared = page.locator("#parity tr", has_text="bars compared").locator("td").nth(1).inner_text()
            assert int(compared.split()[0]) > 0 and page.locator("#parity-drift tr").count() > 1
            page.screenshot(path=str(tmp_path / "parity.png"), full_page=True)
            if os.environ.get("ASTER_DASHBOARD_SCREENSHOT") == "1":  # for the README: some trades on the chart first
                page.wait_for_function("() => Number(document.querySelector('#decision-side').dataset.id) >= 40",
                                       timeout=120_000)
                (ROOT / "reports").mkdir(exist_ok=True)
                page.screenshot(path=str(ROOT / "reports" / "dashboard.png"), full_page=True)
            # the token, pasted into the Controls tab, lets a confirmed pause through
            page.locator("nav button[data-tab=controls]").click()
            page.fill("#token", token)
            page.click("#token-save")
            page.on("dialog", lambda d: d.accept())
            page.click("button[data-command=pause]")
            page.wait_for_function("() => document.querySelector('#command-result').textContent.includes('stored')",
                                   timeout=10_000)
            assert token not in page.content()
            browser.close()
        assert not errors, errors
        assert seen[0] < seen[1] < seen[2]
        row = live_store.predictions(db, session_id="browser").set_index("id").loc[shown_id]
        assert shown_side == row["side"] and f"#{shown_id}" in shown_time
        deadline = time.time() + 30
        while time.time() < deadline and live_store.commands(db, "browser")[0]["status"] == "new":
            time.sleep(0.5)
        assert live_store.commands(db, "browser")[0]["status"] == "done"  # the runner acted on the pause
        events = live_store.risk_events(db, "browser")
        assert (events["action"] == "paused").any()
    finally:
        _stop(replay)
        _stop(dash)
