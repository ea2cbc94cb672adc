"""The storefront, experiments and model pages in headless Chromium against a real local graph:
known and new users get explained lists, clicks on a category make the next list gain items of it,
the experiments page shows both arms with confidence intervals and the traffic-share plot, and no
page logs a console error."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.browser.conftest import console_errors

pytestmark = [pytest.mark.browser, pytest.mark.integration]
WAIT_S = 30


def _wait(driver):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S)


def _items(driver) -> list[dict]:
    from selenium.webdriver.common.by import By

    return [
        {"id": li.get_attribute("data-item-id"), "category": li.get_attribute("data-category"), "el": li}
        for li in driver.find_elements(By.CSS_SELECTOR, "li[data-item-id]")
    ]


def _open(driver, url: str) -> list[dict]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    driver.get(url)
    _wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#recs")))
    return _items(driver)


def test_known_user_gets_an_explained_list(web, driver):
    from selenium.webdriver.common.by import By

    items = _open(driver, f"{web.url}/?user=7")
    assert len(items) == 10 and len({i["id"] for i in items}) == 10
    served = driver.find_element(By.CSS_SELECTOR, "p.served")
    assert "known user" in served.text and served.get_attribute("data-variant") in ("champion", "challenger")
    first = items[0]["el"]
    assert first.find_element(By.CSS_SELECTOR, ".title").text.startswith("Movie ")
    assert first.find_element(By.CSS_SELECTOR, ".why").text  # the reason
    assert "confidence" in first.find_element(By.CSS_SELECTOR, ".conf").text
    actions = [b.get_attribute("data-action") for b in first.find_elements(By.CSS_SELECTOR, "button[data-action]")]
    assert actions == ["click", "like", "purchase"]
    assert console_errors(driver) == []


def test_new_user_starts_cold_with_popular_items(web, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    driver.get(f"{web.url}/")
    driver.find_element(By.CSS_SELECTOR, "button[name=new]").click()
    _wait(driver).until(EC.url_contains("user=guest-"))
    items = _items(driver)
    assert len(items) == 10
    assert "new user: cold start" in driver.find_element(By.CSS_SELECTOR, "p.served").text
    assert all(i["el"].find_element(By.CSS_SELECTOR, ".why").text.startswith("popular in ") for i in items)
    assert console_errors(driver) == []


def test_channel_and_exclusions_reach_the_graph(web, driver):
    from selenium.webdriver.common.by import By

    before = _open(driver, f"{web.url}/?user=guest-excl&channel=mobile")
    assert "on mobile" in driver.find_element(By.CSS_SELECTOR, "p.served").text
    excluded = [i["id"] for i in before[:3]]
    after = _open(driver, f"{web.url}/?user=guest-excl&channel=mobile&exclude={','.join(excluded)}")
    assert len(after) == 10 and not set(excluded) & {i["id"] for i in after}
    assert console_errors(driver) == []


def test_clicks_on_a_new_category_make_the_next_list_gain_it(web, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    items = _open(driver, f"{web.url}/?user=guest-clicker")
    counts = Counter(i["category"] for i in items)
    category = min(counts, key=lambda c: (counts[c], c))  # the least shown category: "new" to this user
    start = counts[category]
    for _ in range(2):  # click on items of that category; each click swaps the list in place
        target = next(i for i in _items(driver) if i["category"] == category)
        old_list = driver.find_element(By.CSS_SELECTOR, "ol.recs")
        target["el"].find_element(By.CSS_SELECTOR, "button[data-action=click]").click()
        _wait(driver).until(EC.staleness_of(old_list))
        _wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, "ol.recs")))
        assert "recorded" in driver.find_element(By.CSS_SELECTOR, "p.notice").text
    after = Counter(i["category"] for i in _items(driver))
    assert after[category] > start, (category, counts, after)
    assert console_errors(driver) == []


def test_experiments_page_shows_both_arms_with_cis_and_the_plot(graph, web, driver):
    from selenium.webdriver.common.by import By

    from smartreco.serving.client import feedback, recommend

    for k in range(40):  # traffic for both arms (the fixed router splits 50/50), a few clicks
        user = str(k % 40 + 1)
        answer = recommend(user, 5, url=graph.url)
        if k % 3 == 0:
            rec = answer["jsonData"]["recommendations"][0]
            rid = answer["meta"].get("tags", {}).get("request_id") or answer["meta"].get("puid")
            feedback(user, rec["item_id"], "click", response={"meta": {"puid": rid}, "jsonData": answer["jsonData"]},
                     url=graph.url)
    deadline = time.monotonic() + WAIT_S  # impressions reach the event log through the request logger (async)
    while True:
        driver.get(f"{web.url}/experiments")
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.arm")
        if len(rows) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {r.get_attribute("data-arm") for r in rows} == {"champion", "challenger"}
    for row in rows:
        cis = row.find_elements(By.CSS_SELECTOR, "td.ci")
        assert len(cis) == 2 and all("[" in c.text and "%" in c.text for c in cis)
    assert driver.find_element(By.CSS_SELECTOR, "table.comparisons tbody tr").text  # lift, p-value, d
    assert "chi-square p" in driver.find_element(By.CSS_SELECTOR, "p.srm").text
    plot = driver.find_element(By.CSS_SELECTOR, "svg.share-plot")
    assert len(plot.find_elements(By.TAG_NAME, "polyline")) == 2
    assert console_errors(driver) == []


def test_model_page_says_what_is_missing(web, driver):
    from selenium.webdriver.common.by import By

    driver.get(f"{web.url}/model")
    assert driver.find_element(By.CSS_SELECTOR, "p.drift").text == "No drift run yet."
    assert "no MLflow database" in driver.find_element(By.TAG_NAME, "main").text
    assert driver.find_element(By.TAG_NAME, "h1").text == "Model"
    assert console_errors(driver) == []
