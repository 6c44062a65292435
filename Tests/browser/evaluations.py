#!/usr/bin/python3
"""A service's evaluations page in a real headless Chromium (run by DemoTests after README's
demo): the heatmap and the trend charts drawn, at desktop width and at 360 px.

Arguments: BASE_URL SCREENSHOT_DIR
Prints one line per step; exits non-zero at the first step that does not hold.
"""
import os
import sys

from chromium import browser
from selenium.webdriver.support.ui import WebDriverWait

base, shots = sys.argv[1:3]
driver = browser()
try:
    driver.get(base + "/environment")
    # In one step inside the page, which refreshes itself as it goes live.
    driver.execute_script("document.querySelector(arguments[0]).click();", 'tr[data-service="helloservice"] td.slot[data-stage="qa"] .score a')
    WebDriverWait(driver, 30, poll_frequency=0.1).until(
        lambda d: "/evaluations?" in d.current_url and d.execute_script("return !!document.querySelector('table.heatmap');"))
    statuses = driver.execute_script(
        "return Array.from(document.querySelectorAll('table.heatmap tr.score td.heat')).map(function (c) { return c.dataset.status; });")
    assert statuses[-3:] == ["pass", "warning", "fail"], statuses
    print("ok: the heatmap's scores pass, warning, fail", flush=True)
    points = driver.execute_script(
        "return Array.from(document.querySelectorAll('figure.chart')).map(function (f) {"
        " var r = f.querySelector('svg').getBoundingClientRect();"
        " return [f.dataset.sli, f.querySelectorAll('circle.point').length, r.width, r.height]; });")
    assert points and points[0][0] == "score", points
    assert all(p[1] >= 3 and p[2] > 200 and p[3] > 30 for p in points), points
    print("ok: a trend chart per SLI, each point drawn", flush=True)
    driver.save_screenshot(os.path.join(shots, "evaluations.png"))
    driver.set_window_size(360, 800)
    driver.refresh()
    width = driver.execute_script("return document.documentElement.scrollWidth;")
    inner = driver.execute_script("return window.innerWidth;")
    assert width <= inner + 1, "the evaluations page is %d px wide at %d px" % (width, inner)
    print("ok: it fits 360 px", flush=True)
    print("done", flush=True)
finally:
    driver.quit()
