"""Turning action chunks into one action per control step. numpy only: the robot runtime uses it."""

from __future__ import annotations

import numpy as np

from embodied.errors import UserError

REPLAN_EVERY = 4  # actions used from each receding plan before re-planning (experiments/main_job/README.md)
CATCH_UP_RATE = 0.5  # share of what is owed added per action (chosen on the selection block; experiments/robot_link)


class ChunkExecutor:
    """Receding horizon (mode='receding'): execute the first `replan_every` actions of a chunk, then
    ask for a new plan. Temporal ensembling (mode='ensemble', as in ACT): plan every step and execute
    the weighted mean of every live chunk's action for this step, weights exp(-decay * age_rank)
    with the oldest chunk weighted most.

    With `gripper` (the gripper's action column; > 0 closes), a receding plan that switches the gripper is
    executed through the switch before re-planning, even past `replan_every`: a policy unsure *when* to let
    go otherwise plans the release a few steps ahead at every re-plan and never reaches it. And once a switch
    has been executed, a plan computed for an observation from before it (a late plan, the hardware loop) is
    dropped: it never saw the switch and would undo it (measured: pick through the loop with one step of
    delay fell from 85% to 20%, the gripper closing and reopening on the next tick; docs/robot.md).

    With `catch_up` (the columns of relative actions, ee_delta's dx, dy, dz, dyaw), a receding plan is a path:
    each action adds what the plan had moved by this step and the robot has not (the actions it planned since
    the step it was computed for, less those `sent`) times `catch_up_rate`, clipped to [-1, 1]: below 1 the
    debt is repaid over several steps, which damps the overshoot of a loop that corrects with a delay. A
    plan arriving d steps late is run from chunk[d], which assumes chunk[:d] ran; the arm ran the old plan's
    tail meanwhile (or held, or was slowed by the safety layer), and without catching up every seam loses the
    difference (pick through the loop at 4 steps of delay stopped centimetres short of the object;
    experiments/robot_link).

    Loop:  if ex.needs_plan(): ex.add(policy.act(obs))
           action = ex.next()
    """

    def __init__(self, mode: str = "receding", replan_every: int = REPLAN_EVERY, decay: float = 0.01,
                 gripper: int | None = None, catch_up: list[int] | None = None, catch_up_rate: float = CATCH_UP_RATE):
        if mode not in ("receding", "ensemble"):
            raise UserError(f"mode must be 'receding' or 'ensemble', got {mode!r}")
        if replan_every < 1:
            raise UserError(f"replan_every must be >= 1, got {replan_every}")
        self.mode, self.replan_every, self.decay, self.gripper = mode, replan_every, decay, gripper
        if not 0.0 < catch_up_rate <= 1.0:
            raise UserError(f"catch_up_rate must be in (0, 1], got {catch_up_rate}")
        self.catch_up = [] if catch_up is None else [int(c) for c in catch_up]
        self.catch_up_rate = float(catch_up_rate)
        self.reset()

    @classmethod
    def for_policy(cls, policy, replan_every: int = REPLAN_EVERY, commit_gripper: bool = True) -> ChunkExecutor:
        """Receding horizon that commits to gripper switches when the policy's spec names a 'gripper'
        action (VLAPolicy and exported bundles carry one)."""
        names = list((getattr(policy, "spec", None) or {}).get("action_spec", {}).get("names", []))
        column = names.index("gripper") if commit_gripper and "gripper" in names else None
        return cls("receding", replan_every, gripper=column)

    def reset(self) -> None:
        self._chunks: list[tuple[int, np.ndarray]] = []  # (step the chunk starts at, (H, A))
        self._step = 0
        self._switched_at, self._closed = -1, None  # the step the executed gripper last switched at
        self._sent: dict[int, np.ndarray] = {}  # step -> the catch-up columns as the robot ran them

    def needs_plan(self) -> bool:
        if self.mode == "ensemble" or not self._chunks:
            return True
        start, chunk = self._chunks[-1]
        switch = self._switch(chunk)
        until = self.replan_every if switch is None else max(self.replan_every, switch + 1)
        return self._step - start >= min(until, len(chunk))

    def _switch(self, chunk: np.ndarray) -> int | None:
        """The index of the plan's first gripper switch (None without one, or without a gripper column)."""
        if self.gripper is None:
            return None
        closed = chunk[:, self.gripper] > 0
        switch = np.flatnonzero(closed != closed[0])
        return int(switch[0]) if len(switch) else None

    def committed(self) -> bool:
        """Whether the current receding plan has a gripper switch still ahead, which it runs through."""
        if self.mode != "receding" or not self._chunks:
            return False
        start, chunk = self._chunks[-1]
        switch = self._switch(chunk)
        return switch is not None and self._step - start <= switch

    def add(self, chunk: np.ndarray, at: int | None = None) -> None:
        """A plan whose first action is for step `at` (default: this step). A plan computed for an earlier
        step, arriving late (the hardware loop), is used from the current step on: chunk[step - at]. In
        receding mode the plan for the latest step wins; an older one arriving after it is dropped, and so is
        a newer one while the current plan runs through a gripper switch (`committed`: plans that arrive
        unasked, as in the hardware loop)."""
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 2 or len(chunk) == 0:
            raise UserError(f"a chunk is (H, A) with H >= 1; got shape {chunk.shape}")
        at = self._step if at is None else int(at)
        if self.mode == "receding":
            if at <= self._switched_at:  # computed before the last gripper switch ran: it would undo it
                return
            if not self._chunks or (at >= self._chunks[-1][0] and not self.committed()):
                self._chunks = [(at, chunk)]
        else:
            self._chunks.append((at, chunk))

    def covered(self) -> bool:
        """Whether a plan has an action for this step (else: hold, the hardware loop's watchdog)."""
        return any(0 <= self._step - start < len(c) for start, c in self._chunks)

    def source(self) -> int | None:
        """The step the plan behind this step's action was computed for (the newest one, ensembling), or None
        if no plan covers this step: the robot's plan-age accounting."""
        live = [start for start, c in self._chunks if 0 <= self._step - start < len(c)]
        return max(live) if self.mode == "ensemble" and live else (live[-1] if live else None)

    def upcoming(self, n: int) -> np.ndarray:
        """The actions the next `n` steps will execute if no new plan comes (fewer where the plans run out):
        what the robot has committed to, which a real-time-chunking plan continues."""
        out, sent = [], dict(self._sent)
        for step in range(self._step, self._step + n):
            action = self._action(step, sent)
            if action is None:
                break
            out.append(action)
            sent[step] = action[self.catch_up]
        width = self._chunks[-1][1].shape[1] if self._chunks else 0
        return np.asarray(out, np.float32).reshape(len(out), width)

    def _action(self, step: int, sent: dict[int, np.ndarray]) -> np.ndarray | None:
        """The action for `step` from the live plans (None if none covers it), given what ran before it."""
        live = [(start, c) for start, c in self._chunks if 0 <= step - start < len(c)]
        if not live:
            return None
        if self.mode == "ensemble":
            actions = np.stack([c[step - start] for start, c in live])  # oldest first
            weights = np.exp(-self.decay * np.arange(len(live)))
            return ((weights[:, None] * actions).sum(0) / weights.sum()).astype(np.float32)
        start, chunk = live[-1]
        action = chunk[step - start].copy()
        if self.catch_up:
            ran = sum((sent.get(s, 0.0) for s in range(start, step)), np.zeros(len(self.catch_up), np.float32))
            owed = np.nan_to_num(chunk[: step - start, self.catch_up], posinf=0.0, neginf=0.0).sum(0) - ran
            action[self.catch_up] = np.clip(action[self.catch_up] + self.catch_up_rate * owed, -1.0, 1.0)
        return action

    def skip(self) -> None:
        """Advance one step without an action (the robot held: no relative motion)."""
        self._advance(np.zeros(len(self.catch_up), np.float32))

    def sent(self, action: np.ndarray) -> None:
        """After next(): what the robot ran for that step, where it was not the action (the safety layer cut it).
        Non-finite values count as no motion."""
        ran = np.asarray(action, np.float32)[self.catch_up]
        self._sent[self._step - 1] = np.nan_to_num(ran, posinf=0.0, neginf=0.0)

    def _advance(self, ran: np.ndarray) -> None:
        self._sent[self._step] = np.nan_to_num(ran, posinf=0.0, neginf=0.0)
        self._step += 1
        oldest = min((start for start, _ in self._chunks), default=self._step)
        for step in [s for s in self._sent if s < oldest]:  # no live plan reaches back to them
            del self._sent[step]

    def next(self) -> np.ndarray:
        """The action for this control step; advances one step."""
        action = self._action(self._step, self._sent)
        if action is None:
            raise RuntimeError("no plan covers this step: call add(chunk) when needs_plan() says so")
        self._chunks = [(start, c) for start, c in self._chunks if 0 <= self._step - start < len(c)]
        if self.gripper is not None:
            closed = bool(action[self.gripper] > 0)
            if self._closed is not None and closed != self._closed:
                self._switched_at = self._step
            self._closed = closed
        self._advance(action[self.catch_up])
        return action
