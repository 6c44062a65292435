#!/usr/bin/python3
"""The tutorial in a real headless Chromium against the real daemon (run by WebBrowserTests).

Arguments: BASE_URL SHIPYARDCTL STATE_DIR GATE_FILE SCREENSHOT_DIR
alice/alice-secret is an approver, mallory/mallory-secret only a user of the web view.
Prints one line per step; exits non-zero at the first step that does not hold.
"""
import json
import os
import subprocess
import sys

from chromium import browser
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, shipyardctl, state, gate, shots = sys.argv[1:6]


def step(text):
    print("ok:", text, flush=True)


def trigger(image):
    out = subprocess.run([shipyardctl, "trigger", "delivery", "--project", "fulltour", "--service", "helloservice",
                          "--image", image, "--output", "json", "--state-dir", state],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["context"]


def wait(driver, condition, what, timeout=60):
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except Exception:
        driver.save_screenshot(os.path.join(shots, "failure.png"))
        raise AssertionError("timed out waiting for: " + what + "\n" + driver.page_source[:4000])


def css(driver, selector):
    return driver.find_elements(By.CSS_SELECTOR, selector)


def attribute(driver, selector, name):
    """Read in one step inside the page: the page replaces its content as it updates, so an
    element found in one call may be gone by the next."""
    return driver.execute_script(
        "var all = document.querySelectorAll(arguments[0]);"
        "return all.length ? all[all.length - 1].getAttribute(arguments[1]) : null;", selector, name)


def stage_state(driver, stage):
    return attribute(driver, 'section.stage[data-stage="%s"]' % stage, "data-state")


def type_reason(driver, form, text):
    """Focus the reason field in one step inside the page, then type: the page does not replace
    its content while someone types, so the field and its buttons stay."""
    field = driver.execute_script(
        "var f = document.querySelector(arguments[0] + ' input.reason'); if (f) f.focus(); return f;", form)
    assert field is not None, "no reason field in " + form
    field.send_keys(text)


def click(driver, selector):
    """Find and click in one step inside the page, which may replace its content between two calls."""
    assert driver.execute_script("var e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true;", selector), \
        "nothing to click at " + selector


def flash_text(driver):
    return driver.execute_script("var f = document.getElementById('flash'); return f ? f.textContent : '';")


def mark(driver):
    """A value that a reload would wipe: the page must update itself."""
    driver.execute_script("window.__shipyardNoReload = 42;")


def not_reloaded(driver):
    return driver.execute_script("return window.__shipyardNoReload === 42;")


def sign_in(driver, user, password):
    driver.get(base + "/login")
    driver.find_element(By.ID, "login-user").send_keys(user)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(driver, lambda d: d.execute_script("var u = document.getElementById('user'); return u ? u.textContent : null;") == user,
         "signed in as " + user)


driver = browser()
try:
    # A visitor: no buttons anywhere.
    driver.get(base + "/approvals")
    assert not css(driver, "button.approve"), "a visitor sees an Approve button"
    step("a visitor sees no button")

    sign_in(driver, "alice", "alice-secret")
    step("alice signed in")

    # The tutorial's delivery: qa runs (its tasks wait for the gate), production waits for approval.
    context = trigger("ghcr.io/podtato-head/podtatoserver:v0.1.1")
    driver.get(base + "/deliveries/" + context)
    wait(driver, lambda d: stage_state(d, "qa") == "started", "qa running")
    mark(driver)
    step("qa is running")
    open(gate, "w").close()
    wait(driver, lambda d: stage_state(d, "qa") == "finished", "qa finished, without a reload")
    wait(driver, lambda d: stage_state(d, "production") == "waitingForApproval", "production waiting for approval")
    assert not_reloaded(driver), "the page was reloaded"
    step("qa finished and production waits for approval, without a reload")
    driver.save_screenshot(os.path.join(shots, "delivery-waiting.png"))

    # The approvals page shows it, with its buttons.
    driver.get(base + "/approvals")
    wait(driver, lambda d: css(d, 'tr.approval[data-context="%s"]' % context), "the approval listed")
    driver.save_screenshot(os.path.join(shots, "approvals.png"))

    # Approve with a reason, on the delivery page.
    driver.get(base + "/deliveries/" + context)
    type_reason(driver, 'section.stage[data-stage="production"] form.decide', "release notes checked")
    click(driver, 'section.stage[data-stage="production"] form.decide button.approve')
    wait(driver, lambda d: stage_state(d, "production") == "finished", "production deployed")
    page = driver.page_source
    assert "approved by alice (web)" in page and "release notes checked" in page, "the decision is not shown"
    step("alice approved with a reason and production deployed")
    driver.save_screenshot(os.path.join(shots, "delivery.png"))

    # The confirmation stays while the page updates itself, until alice dismisses it.
    assert css(driver, "#flash"), "no confirmation after the approval"
    driver.execute_script("document.querySelector('#main h1').setAttribute('data-old', '1');")
    # Another service's delivery changes the record: the page refreshes its content.
    subprocess.run([shipyardctl, "trigger", "delivery", "--project", "fulltour", "--service", "otherservice",
                    "--image", "ghcr.io/podtato-head/other:v1", "--state-dir", state], check=True, capture_output=True)
    wait(driver, lambda d: d.execute_script("return document.querySelector('#main h1[data-old]') === null;"), "the page refreshed")
    assert css(driver, "#flash") and "approved" in driver.find_element(By.ID, "flash").text, "the confirmation vanished"
    click(driver, "#flash .dismiss")
    wait(driver, lambda d: not css(d, "#flash"), "the confirmation dismissed")
    step("the confirmation stayed until dismissed")

    # Payloads: collapsed to their keys, pretty when opened.
    # In one step inside the page, which replaces its content as it updates.
    text = driver.execute_script(
        "document.querySelector('details.events').open = true;"
        "var p = document.querySelector('details.payload'); p.open = true;"
        "return p.querySelector('summary').textContent + '\\n' + p.querySelector('pre').textContent;")
    assert text.startswith("{ "), "the collapsed payload does not name its keys: " + text[:100]
    text = text.split("\n", 1)[1]
    assert "\n  " in text and text.strip().startswith("{"), "the payload is not pretty-printed: " + text[:200]
    step("event payloads are collapsible and pretty")

    # The environment: helloservice's version in each stage, since when.
    driver.get(base + "/environment")
    slot = 'section.environment[data-project="fulltour"] tr[data-service="helloservice"] td.slot[data-stage="%s"] .version'
    wait(driver, lambda d: all((attribute(d, slot % stage, "href") or "").endswith(context) for stage in ("qa", "production")),
         "v0.1.1 in qa and production")
    assert "podtatoserver:v0.1.1" in css(driver, slot % "production")[0].text
    step("the environment shows v0.1.1 in qa and production")
    driver.save_screenshot(os.path.join(shots, "environment.png"))

    # The list: one row per delivery, with its image and the stages it reached; filters.
    driver.get(base + "/deliveries?version=v0.1.1&stage=production")
    row = 'tr.delivery[data-context="%s"]' % context
    wait(driver, lambda d: css(d, row), "the delivery listed")
    assert len(css(driver, "tr.delivery")) == 1, "one row per delivery"
    assert "podtatoserver:v0.1.1" in css(driver, row + " td.image")[0].text
    assert [li.get_attribute("data-stage") for li in css(driver, row + " ol.reached li")] == ["qa", "production"]
    driver.get(base + "/deliveries?version=v9.9")
    wait(driver, lambda d: css(d, "p.empty"), "no delivery of v9.9")
    step("the list groups by delivery and filters by version and stage")

    # At phone width: nothing wider than the screen (tables scroll inside their box).
    driver.set_window_size(360, 800)
    for path in ("/environment", "/deliveries", "/deliveries/" + context, "/approvals", "/projects"):
        driver.get(base + path)
        width = driver.execute_script("return document.documentElement.scrollWidth;")
        inner = driver.execute_script("return window.innerWidth;")
        assert width <= inner + 1, "%s is %d px wide at %d px" % (path, width, inner)
        if path == "/deliveries/" + context:
            driver.save_screenshot(os.path.join(shots, "narrow-delivery.png"))
    driver.set_window_size(1400, 1000)
    step("every page fits 360 px")

    # A second delivery appears on the open approvals page by itself; a rejection ends it with fail.
    driver.get(base + "/approvals")
    mark(driver)
    second = trigger("ghcr.io/podtato-head/podtatoserver:v0.1.2")
    wait(driver, lambda d: css(d, 'tr.approval[data-context="%s"]' % second), "the new approval appears without a reload")
    assert not_reloaded(driver), "the approvals page was reloaded"
    step("a new approval appeared without a reload")
    row = 'tr.approval[data-context="%s"]' % second
    type_reason(driver, row, "load test failed")
    click(driver, row + " button.reject")
    wait(driver, lambda d: not css(d, row), "the approval gone")
    driver.get(base + "/deliveries/" + second)
    wait(driver, lambda d: stage_state(d, "production") == "finished", "production ended")
    assert "fail" in attribute(driver, 'section.stage[data-stage="production"] h2 .state', "class"), "the rejected delivery did not fail"
    assert "declined by alice (web)" in driver.page_source
    step("a rejection ended the delivery with fail")

    # mallory, signed in but not an approver: no button.
    driver.delete_all_cookies()
    third = trigger("ghcr.io/podtato-head/podtatoserver:v0.1.3")
    sign_in(driver, "mallory", "mallory-secret")
    driver.get(base + "/approvals")
    wait(driver, lambda d: css(d, 'tr.approval[data-context="%s"]' % third), "the third approval listed")
    assert not css(driver, "button.approve"), "a non-approver sees an Approve button"
    step("a signed-in non-approver sees no button")

    # A later delivery queues behind the one waiting for approval, and the list says so.
    fourth = trigger("ghcr.io/podtato-head/podtatoserver:v0.1.4")
    why = 'tr.delivery[data-context="%s"] .waiting-for' % fourth

    # The open list updates itself (also with what changed before its live stream connected).
    driver.get(base + "/deliveries")

    def behind(d):
        text = d.execute_script("var w = document.querySelector(arguments[0]); return w ? w.textContent : '';", why)
        return ("delivery %s ahead in production" % third[:8]) in text
    wait(driver, behind, "the fourth waits behind the third")
    driver.save_screenshot(os.path.join(shots, "deliveries.png"))
    driver.get(base + "/deliveries/" + fourth)
    wait(driver, lambda d: css(d, 'section.stage[data-stage="production"] .waiting-for'), "the reason on the delivery page")
    step("a waiting delivery says behind which one")

    # mallory may not pause, abort or deliver: no buttons, and a forged form is refused.
    driver.get(base + "/deliveries/" + fourth)
    assert not css(driver, "div.controls"), "a non-approver sees Pause/Abort"
    driver.get(base + "/environment")
    assert not css(driver, "form.deliver"), "a non-approver sees Deliver"
    driver.execute_script(
        "var f = document.createElement('form'); f.method = 'post'; f.action = '/deliveries/' + arguments[0] + '/abort';"
        "var c = document.createElement('input'); c.name = 'csrf'; c.value = document.querySelector('input[name=csrf]').value;"
        "f.appendChild(c); document.body.appendChild(f); f.submit();", fourth)
    wait(driver, lambda d: "mallory may not abort sequences" in flash_text(d), "mallory's abort refused")
    step("a non-approver has no controls and a forged abort is refused")

    # alice pauses, resumes and aborts the waiting delivery, and delivers an image from the environment.
    driver.delete_all_cookies()
    sign_in(driver, "alice", "alice-secret")
    driver.get(base + "/deliveries/" + fourth)
    # (The page being left may show the new state by its live refresh before the answer's page
    # with its confirmation loads: wait for both.)
    click(driver, 'section.stage[data-stage="production"] .controls button.pause')
    wait(driver, lambda d: stage_state(d, "production") == "paused" and ("paused " + fourth) in flash_text(d), "paused, and said so")
    click(driver, 'section.stage[data-stage="production"] .controls button.resume')
    wait(driver, lambda d: stage_state(d, "production") == "waiting" and ("resumed " + fourth) in flash_text(d), "resumed, and said so")
    driver.execute_script("document.querySelector(arguments[0]).open = true;", 'section.stage[data-stage="production"] details.abort')
    type_reason(driver, 'section.stage[data-stage="production"] details.abort form', "superseded")
    click(driver, 'section.stage[data-stage="production"] details.abort button.abort')
    wait(driver, lambda d: stage_state(d, "production") == "aborted", "aborted")
    assert "aborted by alice: superseded" in driver.page_source
    step("alice paused, resumed and aborted a delivery in the browser")
    driver.get(base + "/environment")
    form = 'tr[data-service="helloservice"] form.deliver'
    type_reason(driver, form, "ghcr.io/podtato-head/podtatoserver:v0.1.5")
    click(driver, form + " button")
    wait(driver, lambda d: "/deliveries/" in d.current_url and "qa.delivery triggered for helloservice" in flash_text(d), "the new delivery's page")
    assert "podtatoserver:v0.1.5" in driver.page_source
    driver.save_screenshot(os.path.join(shots, "delivered.png"))
    step("alice delivered an image from the environment")
    print("done", flush=True)
finally:
    driver.quit()
