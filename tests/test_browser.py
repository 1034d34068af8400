"""What an operator sees, in a real headless Chromium against uvicorn and a real worker.

Skipped, with the reason in the summary, where Chromium and its driver are not installed
(`.ci/run` installs them, so CI always runs these).
"""

import uuid
from typing import Any

import pytest
from django.test import Client

from conftest import wait_until
from jobs.models import TaskRecord
from tests.conftest import BROWSER_MISSING, CHROMEDRIVER, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason=BROWSER_MISSING)]

PASSWORD = "a-long-test-password-1"
CANVAS_HAS_PIXELS = """
const canvas = document.getElementById("rates-chart");
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
return canvas.width > 0 && pixels.some((value) => value !== 0);
"""


def operator(make_user: Any) -> Any:
    user = make_user(staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def log_in(browser: Any, base_url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{base_url}/admin/login/?next=/admin/")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_until(lambda: browser.current_url.rstrip("/").endswith("/admin"), timeout=10, what="the admin index")


def text_of(browser: Any, element_id: str) -> str:
    return browser.execute_script(f"const e = document.getElementById('{element_id}'); return e ? e.textContent : '';")


def test_an_operator_sees_the_chart_drawn_and_a_task_just_submitted_counted(
    worker, web_server, browser, make_user, client_for
):
    from selenium.webdriver.common.by import By

    log_in(browser, web_server, operator(make_user).username)
    browser.find_element(By.LINK_TEXT, "Dashboard").click()
    wait_until(lambda: browser.execute_script(CANVAS_HAS_PIXELS), timeout=10, what="the chart to be drawn")
    browser.execute_script("window.stillTheSamePage = true;")
    before = int(text_of(browser, "total-SUCCESS").split()[-1])

    user = make_user()
    accepted = client_for(user).post("/api/v1/prompts/", {"prompt_text": "count me in"}, format="json").json()
    wait_until(lambda: TaskRecord.objects.filter(pk=accepted["task_id"], state="SUCCESS").exists(), what="the prompt")

    wait_until(
        lambda: int(text_of(browser, "total-SUCCESS").split()[-1]) > before,
        timeout=15,
        what="the dashboard to count the finished task",
    )
    charted = browser.execute_script(
        "return window.dashboardChart.data.datasets.find((d) => d.label === 'SUCCESS').data.reduce((a, b) => a + b, 0);"
    )
    assert charted > before
    assert browser.execute_script("return window.stillTheSamePage === true;")  # refreshed without a reload
    assert browser.execute_script(CANVAS_HAS_PIXELS)


def test_an_image_generations_progress_advances_on_its_admin_page_without_reloading(
    worker, web_server, browser, make_user, client_for
):
    log_in(browser, web_server, operator(make_user).username)
    user = make_user()
    prompt = f"#delay=1.5 a harbour at night {uuid.uuid4().hex}"
    accepted = client_for(user).post("/api/v1/images/", {"prompt": prompt}, format="json").json()

    browser.get(f"{web_server}/admin/prompts/promptrequest/{accepted['id']}/change/")
    browser.execute_script("window.stillTheSamePage = true;")
    wait_until(
        lambda: browser.execute_script("return document.getElementById('live-progress').dataset.final;"),
        timeout=20,
        what="the final state on the page",
    )

    events = browser.execute_script("return window.liveProgressEvents;")
    percents = [event["progress_percent"] for event in events if event.get("state") == "PROGRESS"]
    assert len(set(percents)) >= 2 and percents == sorted(percents), events
    assert events[-1]["state"] == "SUCCESS"
    assert text_of(browser, "live-progress-state") == "SUCCESS"
    assert browser.execute_script("return document.getElementById('live-progress-bar').value;") == 100
    assert browser.execute_script("return window.stillTheSamePage === true;")


def test_a_user_who_is_not_staff_is_sent_to_login(transactional_db, web_server, browser, make_user):
    session = Client()
    session.force_login(make_user())
    browser.add_cookie({"name": "sessionid", "value": session.cookies["sessionid"].value, "path": "/"})

    browser.get(f"{web_server}/admin/dashboard/")

    assert "/admin/login/" in browser.current_url and "next=/admin/dashboard/" in browser.current_url
    assert "not authorized" in browser.page_source
