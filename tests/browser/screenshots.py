"""Screenshots of the storefront, experiments and model pages for docs/ (``scripts/screenshots.sh``): the
running web app (and its graph) are given by URL; some traffic first so the experiments page has data."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from smartreco.serving.client import feedback, recommend
from tests.browser.conftest import make_driver, wait_http


def traffic(graph: str, users: int = 60) -> None:
    """Requests from ``users`` known users, a click on every third answer (through the graph)."""
    for k in range(users):
        user = str(k + 1)
        answer = recommend(user, 10, url=graph)
        if k % 3 == 0 and answer["jsonData"]["recommendations"]:
            rec = answer["jsonData"]["recommendations"][k % 5]
            rid = (answer["meta"].get("tags") or {}).get("request_id") or answer["meta"].get("puid")
            feedback(user, rec["item_id"], "click", response={"meta": {"puid": rid}, "jsonData": answer["jsonData"]},
                     url=graph)


def shoot(driver, url: str, path: Path) -> None:
    driver.get(url)
    for _ in range(2):  # the window's height includes the browser's own frame: fit, then fit again
        height = driver.execute_script("return document.documentElement.scrollHeight")
        inner = driver.execute_script("return window.innerHeight")
        outer = driver.get_window_size()["height"]
        driver.set_window_size(1280, min(max(height + outer - inner, 600), 2400))
    driver.save_screenshot(str(path))
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web", required=True)
    ap.add_argument("--graph", required=True)
    ap.add_argument("--user", default="42")
    ap.add_argument("--out", default="docs/screenshots")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wait_http(f"{args.web}/health/ping", timeout_s=300)
    wait_http(f"{args.graph}/health/ping", timeout_s=60)
    traffic(args.graph)
    time.sleep(2)  # the request logger delivers impressions asynchronously
    driver = make_driver()
    try:
        from selenium.webdriver.common.by import By

        driver.get(f"{args.web}/?user={args.user}")
        driver.find_elements(By.CSS_SELECTOR, "button[data-action=like]")[2].click()  # shows the feedback notice
        time.sleep(2)
        shoot(driver, f"{args.web}/?user={args.user}&notice=like+recorded", out / "storefront.png")
        shoot(driver, f"{args.web}/experiments", out / "experiments.png")
        shoot(driver, f"{args.web}/model", out / "model.png")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
