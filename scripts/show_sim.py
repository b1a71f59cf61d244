"""Screenshots of the sim's web page in headless Chromium, driving a chained two-command episode with the
scripted expert through the page's command box (the README's pictures).

    python scripts/show_sim.py                     # docs/sim_page_1.png, docs/sim_page_2.png
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pexpect
import tyro

from embodied.errors import UserError, cli
from embodied.paths import repo_root


@dataclass
class Args:
    seed: int = 3
    out: Path = Path("docs")
    commands: tuple[str, ...] = ("could you raise the {object} off the table", "now put the {object} on the {plate}")
    """Typed in turn; {object} and {plate} become the scene's first object and plate."""


def main(args: Args) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        raise UserError("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    sim = pexpect.spawn(sys.executable, [str(repo_root() / "scripts/sim.py"), "--web", "--port", "0", "--seed",
                                         str(args.seed), "--speed", "1"], encoding="utf-8", timeout=300,
                        env={**os.environ, "TERM": "dumb", "PROMPT_TOOLKIT_NO_CPR": "1"}, dimensions=(40, 200))
    sim.expect("sim> ")
    url = re.search(r"web view: (\S+)", sim.before).group(1)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1040,820"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        browser.get(url)
        while not browser.execute_script("return window.framesShown && window.simState"):
            time.sleep(0.1)
        things = browser.execute_script("return window.simState.things")
        names = {"object": things[0], "plate": next(t[:-len(" (plate)")] for t in things if t.endswith("(plate)"))}
        args.out.mkdir(parents=True, exist_ok=True)
        for i, command in enumerate(args.commands, 1):
            browser.find_element(By.ID, "line").send_keys(command.format(**names), Keys.ENTER)
            sim.expect(r"(success|not done|ungraded|error).*\r\n")
            print(sim.match.group(0).strip())
            time.sleep(0.5)  # the last frame
            path = args.out / f"sim_page_{i}.png"
            browser.save_screenshot(str(path))
            print(f"wrote {path}")
    finally:
        browser.quit()
        sim.sendline(":quit")
        sim.expect(pexpect.EOF)


if __name__ == "__main__":
    cli(lambda: main(tyro.cli(Args)))
