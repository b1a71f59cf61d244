"""What a robot's control loop reports about its plans: deadlines (how old the plan behind each action
was, how long plans took to arrive, why ticks were held) and seams (how much the action jumps where one
plan hands over to the next, against the jumps within a plan). numpy only: a real robot's loop uses it.

Both take the loop's per-tick log: {"held", "why", "plan" (the tick the plan was computed for), "tick",
"action", "ee" (the end effector's position after the tick)}.
"""

from __future__ import annotations

import numpy as np

HOLD_REASONS = ("no plan yet", "plan ran out", "policy silent")


def _stats(values) -> dict:
    values = np.asarray(values, float)
    if not len(values):
        return {"p50": None, "p95": None, "max": None}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "max": float(values.max())}


def deadlines(ticks: list[dict], arrival_age: list[float], period: float, timeout: float) -> dict:
    """plan_age_ms: at each executed tick, the age of the observation its plan was computed from;
    arrival_ms: observation captured -> its plan usable on the robot; held ticks by reason; stale_ticks:
    executed from a plan older than the timeout (the watchdog checks arrival: a plan taken near the timeout
    runs on past it)."""
    ages = [(t["tick"] - t["plan"]) * period for t in ticks if not t["held"]]
    return {"plan_age_ms": _stats(np.asarray(ages) * 1e3), "arrival_ms": _stats(np.asarray(arrival_age) * 1e3),
            "held": {why: sum(t["why"] == why for t in ticks) for why in HOLD_REASONS},
            "stale_ticks": sum(a > timeout + 1e-9 for a in ages)}


def seams(ticks: list[dict], gripper: int | None, period: float) -> dict:
    """Action jumps (L2 over the motion dimensions, the gripper left out) from one executed tick's planned
    action to the next: at plan switches (seam_jump) and where the same plan goes on, or would have gone on
    had it not been replaced ("continued": the replaced plan's action for that tick; within_plan_jump);
    their ratio; the first plan's jump from the hold before it, as planned and as sent (after the safety layer's
    soft start); the end effector's jerk (m/s^3)."""
    def motion(a):
        return np.delete(np.asarray(a, float), gripper) if gripper is not None else np.asarray(a, float)

    seam, within, first, first_sent = [], [], None, None
    for before, now in zip(ticks, ticks[1:], strict=False):
        if now["held"]:
            continue
        if before["held"]:
            if first is None:
                first = float(np.linalg.norm(motion(now["planned"]) - motion(before["action"])))
                first_sent = float(np.linalg.norm(motion(now["action"]) - motion(before["action"])))
            continue
        jump = float(np.linalg.norm(motion(now["planned"]) - motion(before["planned"])))
        if now["plan"] == before["plan"]:
            within.append(jump)
        else:
            seam.append(jump)
            if now.get("continued") is not None:
                within.append(float(np.linalg.norm(motion(now["continued"]) - motion(before["planned"]))))
    ee = np.asarray([t["ee"] for t in ticks], float)
    jerk = np.linalg.norm(np.diff(ee, n=3, axis=0), axis=1) / period**3 if len(ee) > 3 else np.zeros(0)
    seam_jump, within_jump = (float(np.mean(v)) if v else None for v in (seam, within))
    return {"seams": len(seam), "within_steps": len(within), "seam_jump": seam_jump, "within_plan_jump": within_jump,
            "seam_ratio": seam_jump / within_jump if seam and within and within_jump > 0 else None,
            "first_plan_jump": first, "first_sent_jump": first_sent, "jerk": _stats(jerk)}
