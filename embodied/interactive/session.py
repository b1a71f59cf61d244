"""The typed-command sim's state: one tabletop scene, a policy, and what each typed line does.

A line that is not a meta command (":...") is an instruction: it is grounded in the scene (exact form or
paraphrase; see embodied.envs.grounding) so the outcome can be judged, then the policy acts until success,
the step limit, or Ctrl-C. Commands chain: each continues from the scene as the last one left it.
Nothing typed runs code or writes outside the working folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embodied.errors import UserError

HELP = """commands:
  <instruction>        the policy acts on it, e.g. "pick up the red cube" (any wording)
  :scene               the objects in the scene, as they can be named
  :reset [SEED]        a new scene
  :task FAMILY         a new scene with a task of that family (its instruction is suggested)
  :policy PATH|expert  switch policy (a run, a checkpoint, an exported bundle, or the scripted expert)
  :adapter NAME|none   switch the policy's LoRA adapter (a fine-tune run or adapter folder loads it)
  :record FILE.mp4     record what the cameras see from now on (inside this folder); :stop writes it
  :speed X             X times real time (0: as fast as possible)
  :help, :quit         this text; leave (Ctrl-D too). Ctrl-C stops the robot, not the sim."""


@dataclass
class Outcome:
    instruction: str
    graded: bool
    success: bool
    steps: int
    seconds: float
    stopped: str = ""  # who stopped it ("Ctrl-C", "the stop button"), "" if it ran its course
    family: str = ""

    def __str__(self) -> str:
        how = f"stopped ({self.stopped})" if self.stopped else ("success" if self.success else "not done") \
            if self.graded else "ungraded"
        return f"{how} after {self.steps} steps, {self.seconds:.1f} s" + (f" [{self.family}]" if self.family else "")


class Session:
    def __init__(self, policy: str = "expert", seed: int = 0, max_steps: int = 150, speed: float = 0.0,
                 image_size: tuple[int, int] = (96, 96), folder: Path | None = None, viewer: bool = False):
        import gymnasium as gym

        import embodied.envs as envs
        from embodied.envs.grounding import Grounder

        self.folder = (folder or Path.cwd()).resolve()
        self.env = gym.make(envs.ENV_IDS["suite"], image_size=image_size)
        self.base = self.env.unwrapped  # stepped directly: chained commands outlive one episode's TimeLimit
        self.grounder = Grounder()
        self.max_steps, self.speed = max_steps, speed
        self.recording: tuple[Path, list] | None = None
        self.policy_name = policy
        self.policy = self._load_policy(policy)
        self.instruction = ""
        self.viewer = None
        if viewer:  # MuJoCo's own window, on a machine with a display
            import mujoco.viewer

            self.viewer = mujoco.viewer.launch_passive(self.base.world.model, self.base.world.data)
        self.reset(seed)

    # ---- meta commands ------------------------------------------------------------------------
    def reset(self, seed: int | None = None, family: str | None = None) -> str:
        options = {"task": family} if family else None
        self.obs, info = self.env.reset(seed=seed, options=options)
        self.instruction = ""
        return f"new scene (seed {seed}); for example: {info['instruction']!r}"

    def things(self) -> list[str]:
        """What can be named, one line each."""
        from embodied.envs.tasks import describe

        world = self.base.world
        return [describe(t, world.things) + ("" if t.kind == "object" else f" ({t.kind})") for t in world.things] \
            + [f"the drawer (open {100 * world.drawer:.0f} cm)"]

    def scene(self) -> str:
        return "in the scene:\n" + "\n".join(f"  {line}" for line in self.things())

    def set_policy(self, spec: str) -> str:
        self.policy, self.policy_name = self._load_policy(spec), spec
        return f"policy: {spec}"

    def set_adapter(self, name: str) -> str:
        if not hasattr(self.policy, "set_adapter"):
            raise UserError(f"the policy {self.policy_name!r} takes no adapters (a trained run does)")
        if name == "none":
            self.policy.set_adapter(None)
            return "adapter: none (the bare base)"
        path = self._inside(name) if ("/" in name or Path(name).exists()) else None
        loaded = self.policy.load_adapter(path) if path else name
        self.policy.set_adapter(loaded)
        return f"adapter: {loaded}"

    def record(self, name: str) -> str:
        path = self._inside(name)
        if path.suffix != ".mp4":
            raise UserError(f"record to an .mp4 file, got {name!r}")
        self.recording = (path, [])
        return f"recording to {path.relative_to(self.folder)}; :stop writes it"

    def stop_recording(self) -> str:
        if self.recording is None:
            raise UserError("not recording (:record FILE.mp4 starts)")
        from embodied.media import write_mp4

        path, frames = self.recording
        self.recording = None
        if not frames:
            return "nothing recorded"
        write_mp4(path, frames, fps=int(round(1 / self.base.config.ctrl_dt)))
        return f"wrote {path.relative_to(self.folder)} ({len(frames)} frames)"

    # ---- instructions -------------------------------------------------------------------------
    def ground(self, text: str):
        """(grounding, a message to show first or None, whether to act on it)."""
        g = self.grounder.ground(text, self.base.world)
        if g.absent:
            names = ", ".join(g.absent)
            return g, f"there is no {names} here. " + self.scene(), False
        if not g.sure:
            unsure = f"not sure what task that is (nearest: {g.nearest!r}, {g.score:.2f})"
            if self.policy_name == "expert":  # it needs a task to act on
                return g, f"{unsure}; the scripted expert only does tasks it can ground: rephrase (see :scene)", False
            return g, f"{unsure}: running ungraded", True
        return g, None, True

    def run(self, text: str, grounding, stopped=lambda: "", on_step=lambda: None) -> Outcome:
        """Act on `text` until success (graded), the step limit, or `stopped()` names who stopped it;
        `on_step()` after every step (the web view renders from it)."""
        from embodied.runtime.chunks import ChunkExecutor

        self.obs = self.base.instruct(text, grounding.task if grounding.sure else None)
        self.instruction = text
        self.policy.reset()
        executor = ChunkExecutor.for_policy(self.policy)
        start, steps, success, by = time.perf_counter(), 0, False, ""
        while steps < self.max_steps and not (by := stopped()):
            if executor.needs_plan():
                executor.add(self.policy.act(self.obs))
            self.obs, _, success, _, _ = self.base.step(executor.next())
            steps += 1
            if self.recording is not None:
                from embodied.media import side_by_side

                self.recording[1].append(side_by_side(self.obs["images"], scale=2))
            if self.viewer is not None:
                self.viewer.sync()
            on_step()
            if self.speed > 0:
                time.sleep(self.base.config.ctrl_dt / self.speed)
            if success:
                break
        return Outcome(text, grounding.sure, bool(success), steps, time.perf_counter() - start, by,
                       grounding.task.family if grounding.sure else "")

    def describe(self, grounding) -> str:
        """What a grounded instruction was taken to mean, e.g. 'pick: red cube'."""
        from embodied.envs.tasks import describe

        if not grounding.sure:
            return "ungraded"
        things = self.base.world.things
        task = grounding.task
        return f"{task.family}: " + ", ".join(describe(t, things) for t in (task.obj, task.target) if t)

    def gripper_position(self) -> np.ndarray:  # (3,) m, world frame
        return self.base.world.grasp_pos

    def close(self) -> None:
        if self.viewer is not None:
            self.viewer.close()
        self.env.close()

    # ---- helpers ------------------------------------------------------------------------------
    def _inside(self, name: str) -> Path:
        path = (self.folder / name).resolve()
        if not path.is_relative_to(self.folder):
            raise UserError(f"{name!r} is outside the working folder {self.folder}")
        return path

    def _load_policy(self, spec: str):
        from embodied.evaluation.suite import load_policy

        if spec == "expert":
            from embodied.envs.experts import ScriptedExpert

            return ScriptedExpert(self.base)
        if spec == "random":
            raise UserError("the sim drives 'expert', a trained run or checkpoint, or an exported bundle")
        path = self._inside(spec) if not Path(spec).is_absolute() else Path(spec)
        return load_policy(str(path))[0]


def handle(session: Session, line: str) -> str | None:
    """A meta command's answer (None for an instruction, which the caller runs)."""
    words = line.split()
    name, args = words[0].lower(), words[1:]
    if name in (":quit", ":exit"):
        raise EOFError
    if name == ":help":
        return HELP
    if name == ":scene":
        return session.scene()
    if name == ":reset":
        return session.reset(int(args[0]) if args else int(np.random.default_rng().integers(1_000_000)))
    if name == ":task" and len(args) == 1:
        return session.reset(None, args[0])
    if name == ":policy" and len(args) == 1:
        return session.set_policy(args[0])
    if name == ":adapter" and len(args) == 1:
        return session.set_adapter(args[0])
    if name == ":record" and len(args) == 1:
        return session.record(args[0])
    if name == ":stop":
        return session.stop_recording()
    if name == ":speed" and len(args) == 1:
        session.speed = max(0.0, float(args[0]))
        return f"speed: {session.speed:g}x real time" if session.speed else "speed: as fast as possible"
    return f"unknown command {line!r}\n{HELP}"
