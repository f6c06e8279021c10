"""A person's view of the pages: Debian's headless Chromium, driven by Playwright, through nginx and gunicorn.

No browser is downloaded: Playwright launches /usr/bin/chromium. Screenshots go to test-artifacts/web/; one of
each page is committed under docs/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MATCHUPS = [("Brazil", "Argentina"), ("France", "England"), ("Spain", "Italy"), ("Germany", "Netherlands"),
            ("Mexico", "United States"), ("Japan", "South Korea"), ("Portugal", "Brazil")]
SYMBOLS = ["BTC-USD", "SPY", "NVDA", "ETH-USD", "AAPL", "SOL-USD"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run bootstrap/local/install_system_packages.sh chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page that records console errors and refuses, and remembers, any request that leaves the machine."""

    def __init__(self, browser, **context_options) -> None:
        self.context = browser.new_context(**context_options)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.external: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._only_local)

    def _only_local(self, route) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser) -> Iterator[Visit]:
    opened = Visit(browser, viewport={"width": 1280, "height": 900})
    yield opened
    opened.close()
    assert opened.errors == []  # no script error, no CSP violation
    assert opened.external == []  # the pages load nothing from the internet


def pick(page, select_id: str, typed: str) -> None:
    """Search-as-you-type in a Tom Select picker, then take the highlighted option."""
    search = page.locator(f"#{select_id}-ts-control")
    search.click()
    search.press_sequentially(typed, delay=20)
    # the picker filters after a short pause: wait until the highlighted option is one that matches
    page.locator(f"#{select_id}-ts-dropdown .option.active", has_text=re.compile(re.escape(typed), re.I)).wait_for()
    search.press("Enter")
    assert typed.lower() in page.eval_on_selector(f"#{select_id}", "select => select.value").lower()


def test_pick_two_teams_and_see_the_probabilities(web_stack, visit, artifacts_dir):
    page = visit.page
    page.goto(web_stack.url + "/")
    pick(page, "home_team", "Brazi")
    pick(page, "away_team", "Argent")
    page.click("label.switch")
    page.click("#matchups-form button[type=submit]")
    page.wait_for_selector("#matchups-answer")
    headline = page.inner_text("#matchups-answer .headline")
    assert headline in ("Brazil win", "Draw", "Argentina win")
    legend = page.locator("#matchups-answer .legend li")
    assert legend.count() == 3
    shares = [int(legend.nth(i).locator("strong").inner_text().rstrip("%")) for i in range(3)]
    assert 98 <= sum(shares) <= 102
    assert "neutral venue" in page.inner_text("#matchups-answer .eyebrow").lower()
    assert page.locator("#matchups-answer .probbar rect").count() == 3
    assert "naive baseline" in page.inner_text("#matchups-answer .quality")
    page.screenshot(path=str(artifacts_dir / "home-matchup.png"), full_page=True)


def test_pick_an_asset_and_see_the_signal(web_stack, visit, artifacts_dir):
    page = visit.page
    page.goto(web_stack.url + "/")
    pick(page, "symbol", "btc")
    page.click("#assets-form button[type=submit]")
    page.wait_for_selector("#assets-answer")
    assert page.inner_text("#assets-answer .signal").strip().lower() in ("buy", "hold", "sell")
    assert "BTC-USD" in page.inner_text("#assets-answer .eyebrow")
    verdict = page.inner_text("#assets-answer .quality-verdict")
    assert "baseline" in verdict  # the signal is shown beside its baseline, whatever the verdict
    page.screenshot(path=str(artifacts_dir / "home-asset.png"), full_page=True)


def test_a_bad_pick_is_shown_at_the_field(web_stack, visit):
    page = visit.page
    page.goto(web_stack.url + "/")
    pick(page, "home_team", "Spain")
    pick(page, "away_team", "Spain")
    page.click("#matchups-form button[type=submit]")
    page.wait_for_selector("#matchups-away_team-error")
    assert "different teams" in page.inner_text("#matchups-away_team-error")
    assert len(visit.errors) == 1 and "422" in visit.errors[0]  # Chromium notes the page's own 4xx status
    visit.errors.clear()


def test_the_analytics_page_draws_its_charts(web_stack, visit, artifacts_dir):
    import requests

    session = requests.Session()  # a mix of questions, so that every chart has something to draw
    for i, (home, away) in enumerate(MATCHUPS):
        for _ in range(1 + (len(MATCHUPS) - i) // 2):
            session.post(f"{web_stack.url}/api/v1/matchups/predict", timeout=5,
                         json={"home_team": home, "away_team": away, "neutral": i % 3 == 0})
    for i, symbol in enumerate(SYMBOLS):
        for _ in range(len(SYMBOLS) - i):
            session.post(f"{web_stack.url}/api/v1/assets/predict", json={"symbol": symbol}, timeout=5)
    page = visit.page
    page.goto(web_stack.url + "/analytics")
    page.wait_for_selector("#charts[data-rendered]", timeout=15_000)
    drawn = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
        const chart = Chart.getChart(c);
        const total = chart ? chart.data.datasets.flatMap(d => d.data).reduce((a, b) => a + (b || 0), 0) : 0;
        return [c.id, total];
    }))""")
    assert set(drawn) == {"chart-hourly", "chart-matchups", "chart-symbols", "chart-outcomes-matchups",
                          "chart-outcomes-assets", "chart-models"}
    assert all(total > 0 for total in drawn.values()), drawn
    kpis = page.locator("#kpis .kpi .value")
    assert kpis.count() == 4 and int(kpis.nth(1).inner_text().replace(",", "")) >= 4
    page.screenshot(path=str(artifacts_dir / "analytics.png"), full_page=True)


def test_the_home_page_fits_a_phone(web_stack, browser, artifacts_dir):
    phone = Visit(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                  has_touch=True)
    try:
        page = phone.page
        page.goto(web_stack.url + "/")
        pick(page, "symbol", "SPY")
        page.click("#assets-form button[type=submit]")
        page.wait_for_selector("#assets-answer")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0  # nothing wider than the screen
        box = page.locator("#assets-form button[type=submit]").bounding_box()
        assert box["height"] >= 40  # a tappable button
        page.screenshot(path=str(artifacts_dir / "phone-asset.png"), full_page=True)
        assert phone.errors == [] and phone.external == []
    finally:
        phone.close()


def seed_evaluations(models_uri: str) -> None:
    """Until the trained fixture holds evaluations of its own: a few in the registry's shape, near the serving
    version's real holdout figures, with backtests of a made-up signal (tests/web/test_models_page.py)."""
    from pronostico.core import layout, registry, storage
    from pronostico.core.usecases import USE_CASES
    from tests.web.test_models_page import ensure_holdout_backtest, write_evaluations

    for name in USE_CASES:
        if len(registry.list_evaluations(models_uri, name)) >= 2:
            continue
        version = registry.read_current(models_uri, name)["version"]
        metrics = storage.read_json(layout.version_file(models_uri, name, version, layout.METRICS))
        symbols = sorted(ensure_holdout_backtest(models_uri, version)["symbols"]) if name == "assets" else []
        loss = metrics["model"]["log_loss"]
        year = int(metrics["split"]["holdout_end"][:4]) + 1  # windows after the data, for a screenshot that reads true
        written = write_evaluations(models_uri, name, version, symbols, year=year,
                                    losses=(loss * 1.01, loss * 1.02, None, loss * 1.015, loss * 1.03),
                                    baselines={b: v["log_loss"] for b, v in metrics["baselines"].items()})
        for found in (e for e in written if e["status"] == "scored"):  # the holdout's bins, not two made-up ones
            found["model"]["calibration"] = metrics["model"]["calibration"]
            storage.write_json(layout.evaluation_uri(models_uri, name, found["run_id"]), found)
        registry.update_index(models_uri, name)  # as the train step does after writing its evaluation


def test_the_models_page_draws_its_charts(web_stack, visit, browser, artifacts_dir):
    seed_evaluations(web_stack.settings.models_uri)
    page = visit.page
    page.goto(web_stack.url + "/models")
    page.wait_for_selector("#model-cases[data-rendered]", timeout=20_000)
    drawn = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
        const chart = Chart.getChart(c);
        const points = chart ? chart.data.datasets.flatMap(d => d.data).filter(v => v !== null).length : 0;
        return [c.id, points];
    }))""")
    assert {"trend-matchups", "trend-assets"} <= set(drawn)
    reliability = [f"calibration-{name}-{kind}" for name in ("matchups", "assets")
                   for kind in ("holdout", "evaluation")]
    assert all(drawn.get(name, 0) > 2 for name in reliability), drawn  # bins beyond the diagonal's two ends
    curves = [name for name in drawn if name.startswith("curve-assets-")]
    assert any("-holdout-" in name for name in curves) and any("-evaluation-" in name for name in curves)
    assert all(points > 0 for points in drawn.values()), drawn
    assert page.locator("#versions-matchups tbody tr").count() >= 1
    assert page.locator("#assets .badge-serving").count() == 1
    assert page.locator("#assets .backtest-table").count() == 2
    page.screenshot(path=str(artifacts_dir / "models.png"), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "models.png"), full_page=True)
    phone = Visit(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone.page.goto(web_stack.url + "/models#assets")
        phone.page.wait_for_selector("#model-cases[data-rendered]", timeout=20_000)
        overflow = phone.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0  # the wide tables scroll inside their box, not the page
        assert phone.errors == [] and phone.external == []
    finally:
        phone.close()
