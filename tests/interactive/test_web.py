"""The sim's web page in headless Chromium (Debian's chromium + chromium-driver, which `make test` installs):
it loads, shows live frames, a command typed into its box moves the robot, Stop stops it; a foreign page's
websocket is refused."""

import json
import re
import shutil
import time

import numpy as np
import pytest

from tests.interactive.test_sim import scene_names, spawn

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [pytest.mark.slow,  # a real browser
              pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver "
                                 "(make test installs them)")]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)  # explicit driver: no download
    yield driver
    driver.quit()


def wait_for(condition, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := condition():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s")


def test_page_shows_live_frames_and_its_command_box_moves_the_robot(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    objects, plates, _ = scene_names()
    sim = spawn(tmp_path, "--web", "--port", "0", "--speed", "1")
    url = re.search(r"web view: (http://127\.0\.0\.1:\d+/)", sim.before).group(1)  # printed before the prompt
    browser.get(url)
    state = lambda: browser.execute_script("return window.simState")  # noqa: E731
    wait_for(lambda: browser.execute_script("return window.framesShown") >= 1)
    size = browser.execute_script("const v = document.getElementById('view'); return [v.naturalWidth, v.naturalHeight]")
    assert size[0] > 2 * 96 * 2 and size[1] > 96 * 2  # two cameras, larger than the policy's 96x96
    things = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#things li")]
    assert objects[0] in things
    before, frames_before = np.array(state()["gripper"]), browser.execute_script("return window.framesShown")

    box = browser.find_element(By.ID, "line")
    box.send_keys(f"please lift the {objects[0]}", Keys.ENTER)
    sim.expect(f"web> please lift the {objects[0]}")  # the terminal sees the page's command, same session
    sim.expect(r"success after \d+ steps.*\[pick\]")
    wait_for(lambda: state()["outcome"].startswith("success"))
    assert browser.find_element(By.ID, "instruction").text == f"please lift the {objects[0]}"
    assert np.linalg.norm(np.array(state()["gripper"]) - before) > 0.05  # the robot moved to the object
    assert browser.execute_script("return window.framesShown") - frames_before >= 5  # frames while it acted
    log = browser.find_element(By.ID, "log").text
    assert "acting (pick:" in log and "success after" in log

    box.send_keys(f"put the {objects[0]} down on the {plates[0]}", Keys.ENTER)
    sim.expect("acting \\(place:")
    browser.find_element(By.ID, "stop").click()  # mid-episode (~48 steps at real time)
    sim.expect(r"stopped \(the stop button\) after \d+ steps")
    wait_for(lambda: state()["outcome"].startswith("stopped"))

    box.send_keys(":quit", Keys.ENTER)  # the page cannot end the sim
    wait_for(lambda: "quits from its terminal" in browser.find_element(By.ID, "log").text)
    sim.sendline(":quit")
    sim.expect("bye")
    sim.close()


def test_websocket_from_a_foreign_page_is_refused(tmp_path):
    import asyncio

    import aiohttp

    sim = spawn(tmp_path, "--web", "--port", "0")
    port = int(re.search(r"web view: http://127\.0\.0\.1:(\d+)/", sim.before).group(1))

    async def attempt(origin):
        async with aiohttp.ClientSession() as client:
            try:
                async with client.ws_connect(f"http://127.0.0.1:{port}/ws", headers={"Origin": origin}) as ws:
                    await ws.send_str(json.dumps({"line": ":help"}))
                    async for msg in ws:  # frames, states and the echo of the line; then its answer
                        if msg.type == aiohttp.WSMsgType.TEXT and (m := json.loads(msg.data))["type"] == "log" \
                                and not m["source"]:
                            return m["text"]
            except aiohttp.WSServerHandshakeError as e:
                return e.status

    assert asyncio.run(attempt("http://evil.example")) == 403
    assert "commands:" in asyncio.run(attempt(f"http://127.0.0.1:{port}"))
    sim.sendline(":quit")
    sim.expect("bye")
    sim.close()
