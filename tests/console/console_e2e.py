"""The operator console, driven in headless Chromium as an operator would:
log in with the admin account, see every projection live, start a rebuild
of the catalogue with its button and watch the page show it running and
then live again in a new generation; a set-aside event shows in the dead
letters table and its Skip button resolves it. A screenshot of the console
is written where the second argument says (the README shows it).

    python3 tests/console/console_e2e.py target/debug/shopstream [screenshot.png]

Needs Debian's `chromium` and `chromium-driver` and PyPI's `selenium`
(tests/run.sh installs them). Takes about 15 s.
"""

import json
import os
import sqlite3
import sys
import tempfile
import time
import urllib.request
import uuid

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from serving import call, free_port, serve, until  # noqa: E402

ADMIN = {"email": "admin@example.com", "password": "console-admin-1"}
PROJECTIONS = ["carts", "catalogue", "customers", "orders", "sales", "timeline"]
DEADLINE = 60








def shop(api, token, products):
    """Some history, so a rebuild has something to do."""
    for i in range(products):
        call(f"{api}/v1/products", {
            "sku": f"CONSOLE-{i}", "name": f"Lamp {i}", "description": "A lamp.",
            "category": "lighting", "price": {"amount": 1000 + i, "currency": "EUR"},
            "tags": ["lamp"],
        }, token)


def misfile_cart_item(data_dir):
    """A cart event the carts projection cannot read, written straight to
    the event store's file as a bug would leave it: it is set aside."""
    event_id = str(uuid.uuid4())
    with sqlite3.connect(os.path.join(data_dir, "events.sqlite"), timeout=10) as db:
        (last,) = db.execute("SELECT coalesce(max(recorded_at), 0) FROM events").fetchone()
        db.execute(
            "INSERT INTO events (stream, revision, event_id, event_type, schema_version, "
            "recorded_at, data) VALUES (?, 0, ?, 'CartItemSet', 1, ?, ?)",
            (f"cart-{uuid.uuid4()}", event_id, max(last + 1, int(time.time() * 1e6)),
             json.dumps({"not": "a cart item"})))
    return event_id


def main(binary, screenshot=None):
    work = tempfile.mkdtemp(prefix="shopstream-console-")
    data_dir = os.path.join(work, "data")
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    log = open(os.path.join(work, "serve.log"), "w")
    server = serve(binary, port, data_dir, ADMIN, log)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=1500,760"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    browser = None
    try:
        token = until("an admin token",
                      lambda: call(f"{api}/v1/auth/token", ADMIN)["access_token"], DEADLINE)
        shop(api, token, 300)
        browser = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
        # The page redraws its tables every two seconds: an element found a
        # moment ago may be gone; look again.
        redrawn = (StaleElementReferenceException, NoSuchElementException)
        wait = WebDriverWait(browser, DEADLINE, poll_frequency=0.1, ignored_exceptions=redrawn)

        def click(selector):
            def press(b):
                b.find_element(By.CSS_SELECTOR, selector).click()
                return True
            wait.until(press)
        browser.get(f"{api}/console")

        # A wrong password is refused on the page, and nothing else shows.
        browser.find_element(By.ID, "login-email").send_keys(ADMIN["email"])
        browser.find_element(By.ID, "login-password").send_keys("not-the-password")
        browser.find_element(By.ID, "login-submit").click()
        wait.until(EC.text_to_be_present_in_element((By.ID, "login-error"), "Could not log in"))
        assert not browser.find_element(By.ID, "console").is_displayed()

        browser.find_element(By.ID, "login-password").clear()
        browser.find_element(By.ID, "login-password").send_keys(ADMIN["password"])
        browser.find_element(By.ID, "login-submit").click()

        def row(name):
            return browser.find_element(By.CSS_SELECTOR, f'tr[data-projection="{name}"]')

        def field(name, which):
            return row(name).find_element(By.CSS_SELECTOR, f'[data-field="{which}"]').text

        # Every projection, live.
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "tr[data-projection]")) == 6)
        names = [r.get_attribute("data-projection")
                 for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-projection]")]
        assert sorted(names) == PROJECTIONS, names
        wait.until(lambda b: all(field(n, "status") == "live" for n in PROJECTIONS))
        print("ok: logged in; every projection is listed live")

        # A rebuild, started with its button: running, then live again in a
        # new generation.
        generation = int(field("catalogue", "generation"))
        click('tr[data-projection="catalogue"] button[data-action="rebuild"]')
        wait.until(lambda b: field("catalogue", "status") == "rebuilding"
                   or int(field("catalogue", "generation")) > generation)
        wait.until(lambda b: field("catalogue", "status") == "live"
                   and int(field("catalogue", "generation")) > generation)
        print(f"ok: the catalogue rebuilt from the console: generation {generation} -> "
              f"{field('catalogue', 'generation')}")

        # A set-aside event shows, counted, and Skip resolves it.
        letter = misfile_cart_item(data_dir)
        letter_row = f'tr[data-letter="{letter}"]'
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, letter_row)))
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, letter_row)
                   .find_element(By.CSS_SELECTOR, '[data-field="status"]').text == "open")
        if screenshot:
            browser.save_screenshot(screenshot)
            print(f"ok: screenshot in {screenshot}")
        click(f'{letter_row} button[data-action="skip"]')
        wait.until(lambda b: b.find_element(By.CSS_SELECTOR, letter_row)
                   .find_element(By.CSS_SELECTOR, '[data-field="status"]').text == "skipped")
        listed = call(f"{api}/v1/admin/dead-letters?status=skipped", token=token)
        assert [l["event_id"] for l in listed] == [letter], listed
        print("ok: a dead letter shows in the console and Skip resolves it")

        # The page asks for nothing from elsewhere and runs no inline code.
        policy = urllib.request.urlopen(f"{api}/console").headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
        # No script error and no policy violation (failed requests, like the
        # wrong password's 401, are the network's and expected).
        errors = [e for e in browser.get_log("browser")
                  if e["level"] == "SEVERE" and e["source"] != "network"]
        assert errors == [], errors
    except BaseException:
        log.flush()
        with open(log.name) as f:
            sys.stderr.write(f.read()[-4000:])
        raise
    finally:
        if browser:
            browser.quit()
        server.kill()
        server.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
