"""One thread owns the sim session; typed lines from the terminal and the web page queue up and run there
in order, and what happens (messages, state, camera frames) goes to every listener.

One thread because MuJoCo's offscreen GL context belongs to the thread that made it; a queue because two
people (a terminal and a page) may type at once, and commands must not interleave.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import numpy as np

from embodied.interactive.session import Session, handle

Listener = Callable[[str, object], None]  # (kind, payload): "line" (source, text), "message" str, "state" dict,
#                                           "frame" JPEG bytes


class Runner:
    def __init__(self, make_session: Callable[[], Session], stop_hint: str = "Ctrl-C stops",
                 view_size: tuple[int, int] = (320, 320), view_fps: float = 12.0):
        self.stop_hint, self.view_size, self.view_fps = stop_hint, view_size, view_fps
        self.frames_wanted: Callable[[], bool] = lambda: False  # the web page sets it: render only for viewers
        self.busy, self.outcome = False, ""
        self._listeners: list[Listener] = []
        self._lines: queue.Queue = queue.Queue()
        self._stopped_by = ""
        self._last_view = 0.0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, args=(make_session,), name="sim", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    # ---- any thread ---------------------------------------------------------------------------
    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def submit(self, line: str, source: str = "terminal") -> Future:
        """Queue a typed line; the future's result is True when it asked the sim to quit."""
        future: Future = Future()
        self._lines.put((line, source, future))
        return future

    def stop(self, who: str) -> None:
        """Stop the robot (the running instruction, if any)."""
        if self.busy:
            self._stopped_by = who

    def refresh(self) -> None:
        """Publish the state and a frame again (a new viewer arrived)."""
        self._lines.put(None)

    def close(self) -> None:
        self._lines.put(False)
        self._thread.join(timeout=30)

    # ---- the sim thread -----------------------------------------------------------------------
    def _work(self, make_session) -> None:
        try:
            self.session = make_session()
            from embodied.envs.rendering import CameraRenderer

            self._view = CameraRenderer(self.session.base.world.model, *self.view_size)
        except BaseException as e:  # reported by the constructor, in the caller's thread
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        while (item := self._lines.get()) is not False:
            if item is not None:
                line, source, future = item
                self._stopped_by = ""
                self._emit("line", (source, line))
                try:
                    future.set_result(self._execute(line, source))
                except BaseException as e:
                    future.set_exception(e)
            try:
                self._publish(frame=True)
            except Exception as e:  # a view that cannot render must not end the session
                self._emit("message", f"error: the view: {e}")
        self._view.close()
        self.session.close()

    def _execute(self, line: str, source: str) -> bool:
        session = self.session
        try:
            if line.startswith(":"):
                if source != "terminal" and line.split()[0].lower() in (":quit", ":exit"):
                    self._emit("message", "the sim quits from its terminal (:quit or Ctrl-D there)")
                    return False
                self._emit("message", handle(session, line))
                return False
            grounding, message, act = session.ground(line)
            if message:
                self._emit("message", message)
            if not act:
                return False
            self._emit("message", f"acting ({session.describe(grounding)}); {self.stop_hint}")
            self.busy = True
            self._publish(frame=False)
            outcome = session.run(line, grounding, stopped=lambda: self._stopped_by, on_step=self._on_step)
            self.outcome = str(outcome)
            self._emit("message", self.outcome)
        except EOFError:
            return True
        except Exception as e:  # nothing typed ends the session
            self._emit("message", f"error: {e}")
        finally:
            self.busy = False
        return False

    def _on_step(self) -> None:
        if time.perf_counter() - self._last_view >= 1 / self.view_fps:
            self._publish(frame=True)

    def _publish(self, frame: bool) -> None:
        self._emit("state", self.state())
        if frame and self.frames_wanted():
            import cv2

            self._last_view = time.perf_counter()
            data = self.session.base.world.data
            views = [self._view.render(data, camera) for camera in self.session.base.config.cameras]
            gap = np.full((self.view_size[0], 8, 3), 255, np.uint8)
            image = np.concatenate([v for view in views for v in (view, gap)][:-1], axis=1)  # (H, W', 3)
            ok, jpeg = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
            self._emit("frame", jpeg.tobytes())

    def state(self) -> dict:
        s = self.session
        return {"policy": s.policy_name, "instruction": s.instruction, "outcome": self.outcome, "busy": self.busy,
                "things": s.things(), "gripper": [round(float(x), 4) for x in s.gripper_position()],
                "cameras": list(s.base.config.cameras)}

    def _emit(self, kind: str, payload) -> None:
        for listener in list(self._listeners):
            listener(kind, payload)
