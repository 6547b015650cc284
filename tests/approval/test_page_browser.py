"""The approvals page in a real headless browser (Debian's chromium through Selenium),
with JavaScript switched off: sign in, see the masked arguments, approve through the
form; a form on another site posting to the page is refused (Origin, CSRF token)."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from aiohttp import web

from tests.approval.conftest import TOKEN, TOP, approver_headers
from tests.approval.test_guard_e2e import route, send

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="chromium and chromium-driver (Debian) not installed"
)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"profile.managed_default_content_settings.javascript": 2}
    )
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)


def drive(admin: str, evil: str, approval_id: str) -> dict[str, Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    seen: dict[str, Any] = {}
    d = browser()

    def shows(text: str) -> str:
        """The page once it shows `text` (a click may return before the next page)."""
        WebDriverWait(d, 30).until(lambda drv: text in drv.page_source)
        return d.page_source  # type: ignore[no-any-return]

    try:
        d.set_page_load_timeout(60)
        d.get(admin + "/approvals/ui")
        d.find_element(By.NAME, "token").send_keys(TOKEN)
        d.find_element(By.NAME, "name").send_keys("dana")
        d.find_element(By.NAME, "roles").send_keys("on-call")
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        seen["listing"] = shows("Signed in as")
        # another site's form, submitted by the signed-in browser (a click: no JS needed)
        d.get(evil + f"/?id={approval_id}")
        d.find_element(By.ID, "go").click()
        seen["evil"] = shows("Refused")
        d.get(admin + "/approvals/ui")
        row = d.find_element(By.XPATH, f"//tr[td[text()='{approval_id}']]")
        form = row.find_element(By.XPATH, ".//form[input[@name='action'][@value='approve']]")
        form.find_element(By.NAME, "comment").send_keys("INC-981")
        form.find_element(By.CSS_SELECTOR, "button").click()
        seen["after"] = shows("INC-981")
    except Exception as exc:
        seen["error"] = exc
    finally:
        d.quit()
    return seen


async def test_page_in_headless_chromium(
    upstream, admin_token, write_rules, start_proxy, serve_app
):
    _, url = upstream
    rules = write_rules([route(url, mode="defer")], environment="development", **TOP)
    px = await start_proxy(rules)
    _, _, body = await send(px, "/billing/refund", {"order": 7, "password": "hunter2"})
    approval_id = body["error"]["approval_id"]

    async def evil_page(req: web.Request) -> web.Response:
        target = px.admin + "/approvals/ui/decide"
        form = (
            f'<form method="post" action="{target}">'
            f'<input type="hidden" name="id" value="{req.query["id"]}">'
            '<input type="hidden" name="action" value="approve">'
            '<input type="hidden" name="csrf" value="guess">'
            '<button id="go" type="submit">win a prize</button></form>'
        )
        return web.Response(text=f"<html><body>{form}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", evil_page)
    evil = (await serve_app(app)).replace("127.0.0.1", "localhost")  # another site

    async def status() -> str:
        async with px.session.get(
            f"{px.admin}/approvals/{approval_id}", headers=approver_headers()
        ) as r:
            return (await r.json())["status"]

    loop = asyncio.get_running_loop()
    seen = await asyncio.wait_for(
        loop.run_in_executor(None, drive, px.admin, evil, approval_id), 90
    )
    assert "error" not in seen, seen
    assert approval_id in seen["listing"] and "hunter2" not in seen["listing"]
    assert "Refused" in seen["evil"]
    assert "approved" in seen["after"] and "INC-981" in seen["after"]
    assert await status() == "approved"
