"""The sim's web page, for machines without a display: live cameras, the scene, the current instruction and
outcome, and a command box, all driven by the same session as the terminal (through its Runner).

aiohttp serves the page and one websocket per viewer on its own thread and event loop. The sim thread's
events cross over with `call_soon_threadsafe`; each viewer gets every message and the newest frame (a
slow viewer skips frames, it never holds up the robot). Only 127.0.0.1 by default, and a websocket
opened by another site's page (a foreign Origin) is refused, so a web page cannot type commands.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from pathlib import Path

from aiohttp import WSMsgType, web

from embodied.errors import UserError
from embodied.interactive.runner import Runner

PAGE = Path(__file__).with_name("page.html")
MAX_LINE = 500


class Viewer:
    """One websocket: texts in order, frames newest-only."""

    def __init__(self, ws: web.WebSocketResponse):
        self.ws, self.texts, self.frame, self.wake = ws, deque(), None, asyncio.Event()

    async def send_forever(self) -> None:
        while not self.ws.closed:
            await self.wake.wait()
            self.wake.clear()
            while self.texts:
                await self.ws.send_str(self.texts.popleft())
            if self.frame is not None:
                frame, self.frame = self.frame, None
                await self.ws.send_bytes(frame)


class Hub:
    def __init__(self, runner: Runner, loop: asyncio.AbstractEventLoop):
        self.runner, self.loop = runner, loop
        self.viewers: set[Viewer] = set()
        self.log: deque = deque(maxlen=200)  # replayed to a new viewer
        self.state: dict = {}
        runner.frames_wanted = lambda: bool(self.viewers)
        runner.listen(lambda kind, payload: loop.call_soon_threadsafe(self.publish, kind, payload))

    def publish(self, kind: str, payload) -> None:  # on the event loop
        if kind == "frame":
            for v in self.viewers:
                v.frame = payload
                v.wake.set()
            return
        if kind == "state":
            self.state = payload
            text = json.dumps({"type": "state", **payload})
        else:
            source, line = payload if kind == "line" else ("", payload)
            text = json.dumps({"type": "log", "source": source, "text": line})
            self.log.append(text)
        for v in self.viewers:
            v.texts.append(text)
            v.wake.set()

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE.read_text(), content_type="text/html")

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text=f"websocket from a foreign origin {origin!r} refused")
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        viewer = Viewer(ws)
        viewer.texts.extend(self.log)
        if self.state:
            viewer.texts.append(json.dumps({"type": "state", **self.state}))
        self.viewers.add(viewer)
        sender = asyncio.ensure_future(viewer.send_forever())
        self.runner.refresh()  # a frame for the newcomer, even when the robot is idle
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.receive(viewer, msg.data)
        finally:
            self.viewers.discard(viewer)
            sender.cancel()
        return ws

    def receive(self, viewer: Viewer, data: str) -> None:
        try:
            msg = json.loads(data)
        except json.JSONDecodeError:
            msg = None
        if isinstance(msg, dict) and msg.get("stop") is True:
            self.runner.stop("the stop button")
            return
        line = msg.get("line") if isinstance(msg, dict) else None
        if not isinstance(line, str) or "\n" in line or not 0 < len(line.strip()) <= MAX_LINE:
            viewer.texts.append(json.dumps({"type": "log", "source": "", "text":
                                            f"error: expected one line of 1-{MAX_LINE} characters"}))
            viewer.wake.set()
            return
        self.runner.submit(line.strip(), "web")


def serve(runner: Runner, host: str = "127.0.0.1", port: int = 8765) -> str:
    """Serve the page on its own thread (for the life of the process); returns its URL. Port 0 picks a
    free one."""
    started, result = threading.Event(), {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        hub = Hub(runner, loop)
        app = web.Application()
        app.add_routes([web.get("/", hub.page), web.get("/ws", hub.socket)])
        app_runner = web.AppRunner(app, access_log=None)
        try:
            loop.run_until_complete(app_runner.setup())
            site = web.TCPSite(app_runner, host, port)
            loop.run_until_complete(site.start())
            result["port"] = app_runner.addresses[0][1]
        except OSError as e:
            result["error"] = e
            return
        finally:
            started.set()
        loop.run_forever()

    threading.Thread(target=run, name="web", daemon=True).start()
    started.wait()
    if "error" in result:
        raise UserError(f"cannot serve the page on {host}:{port}: {result['error'].strerror or result['error']}; "
                        "pick another with --port (0: any free port)")
    return f"http://{host}:{result['port']}/"
