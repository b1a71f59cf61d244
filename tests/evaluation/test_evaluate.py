"""scripts/evaluate.py end to end: the scripted expert succeeds and the random policy does not, on the
same fixed seeds; the JSON holds seeds and versions and plot_results.py draws it; bad input is one clear line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def evaluate(*args, tmp_path, script="evaluate.py"):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)


@pytest.mark.slow
def test_expert_and_random_on_fixed_seeds_with_versions(tmp_path):
    out = evaluate("expert", "--families", "reach", "press_button", "--episodes", "4", "--seed-start", "500",
                   "--json", "e.json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "e.json").read_text())
    press = 500 + 7 * 100_000  # each family its own scenes: press_button is the suite's 8th
    assert result["seeds"] == {"reach": [500, 501, 502, 503], "press_button": list(range(press, press + 4))}
    assert result["families"] == ["reach", "press_button"] and result["block"] == "seeds from 500"
    assert result["results"]["mean"]["success"] == 1.0 and result["results"]["mean"]["episodes"] == 8
    assert result["random"]["mean"]["success"] <= 0.25  # same seeds, random actions
    for column in ("results", "random"):  # every episode on record: its seed, instruction and outcome
        runs = result[column]["press_button"]["runs"]
        assert [r["seed"] for r in runs] == list(range(press, press + 4))
        assert all(r["instruction"].endswith("button") for r in runs), runs
        assert sum(r["success"] for r in runs) == 4 * result[column]["press_button"]["success"]
    assert result["results"]["reach"]["runs"][0]["instruction"] == result["random"]["reach"]["runs"][0]["instruction"]
    lo, hi = result["results"]["reach"]["ci95"]
    assert 0.5 < lo < 0.52 and hi == 1.0  # Wilson at 4/4
    assert result["versions"]["mujoco"] and result["versions"]["commit"]
    assert "episodes/min" in out.stdout and "100% [51-100]" in out.stdout
    out = evaluate("e.json", "--labels", "expert", "--out", "e.png", tmp_path=tmp_path, script="plot_results.py")
    assert out.returncode == 0 and (tmp_path / "e.png").stat().st_size > 5000, out.stderr[-2000:]
    out = evaluate("e.json", "--labels", "a", "b", tmp_path=tmp_path, script="plot_results.py")
    assert out.returncode != 0 and "2 labels for 1 results files" in out.stderr


@pytest.mark.slow
def test_bad_input_is_one_line(tmp_path):
    out = evaluate("policies/runs/nothing_here", tmp_path=tmp_path)
    assert out.returncode != 0 and "error: no policy" in out.stderr and "Traceback" not in out.stderr
    out = evaluate("expert", "--families", "juggle", tmp_path=tmp_path)
    assert out.returncode != 0 and "unknown families ['juggle']" in out.stderr
    out = evaluate("expert", "--adapter", "x", tmp_path=tmp_path)
    assert out.returncode != 0 and "--adapter applies to a trained policy" in out.stderr
    out = evaluate("expert", "--episodes", "0", tmp_path=tmp_path)
    assert out.returncode != 0 and "--episodes must be >= 1" in out.stderr and "Traceback" not in out.stderr


def test_heldout_split_is_told_apart_by_what_is_new(tmp_path):
    out = evaluate("expert", "--split", "heldout", "--families", "pick", "--episodes", "6", "--no-random-baseline",
                   "--json", "h.json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    kinds = json.loads((tmp_path / "h.json").read_text())["heldout_kinds"]["pick"]
    runs = json.loads((tmp_path / "h.json").read_text())["results"]["pick"]["runs"]
    worded = sum(r["instruction"].startswith("raise the") for r in runs)
    assert kinds == {"wording": [worded, worded], "target": [6 - worded, 6 - worded]}, (kinds, runs)
    assert "held-out wording" in out.stdout


def test_instruction_controls_grade_the_original_and_the_swapped_goal(tmp_path):
    """The expert plans from the task, not the words: with swapped words it still reaches the original goal (100%)
    and never the swapped one, which a policy that reads the words would reach; blank shows no words."""
    out = evaluate("expert", "--instruction", "swap", "--families", "press_button", "open_drawer", "--episodes", "3",
                   "--block", "report", "--no-random-baseline", "--json", "s.json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads((tmp_path / "s.json").read_text())
    assert result["block"] == "report" and result["seeds"]["press_button"][0] == 5_000_000 + 7 * 100_000
    for family in ("press_button", "open_drawer"):
        r = result["results"][family]
        assert r["success"] == 1.0 and r["swap"]["success"] == 0.0, r
        assert all(run["task"] != run["instruction"] for run in r["runs"])
    assert all("close the drawer" in run["instruction"] or "shut" in run["instruction"] or "push the drawer" in
               run["instruction"] for run in result["results"]["open_drawer"]["runs"])
    assert "swapped goal" in out.stdout
    out = evaluate("expert", "--instruction", "blank", "--families", "reach", "--episodes", "2", "--no-random-baseline",
                   "--json", "b.json", tmp_path=tmp_path)
    runs = json.loads((tmp_path / "b.json").read_text())["results"]["reach"]["runs"]
    assert out.returncode == 0 and [r["instruction"] for r in runs] == ["", ""] and all(r["task"] for r in runs)
    out = evaluate("expert", "--instruction", "shout", tmp_path=tmp_path)
    assert out.returncode != 0 and "--instruction must be one of given, blank, swap" in out.stderr


def test_the_failure_table_counts_reasons_and_says_when_none_failed():
    from rich.console import Console

    from embodied.evaluation.rollouts import failure_table

    clean = {"reach": {}, "push": {}, "mean": {}}
    assert failure_table(clean, ["reach", "push"]) == "no episode failed"
    failed = {"reach": {}, "push": {"failures": {"went past": 2}}, "mean": {"failures": {"went past": 2}}}
    console = Console(width=200, record=True)
    console.print(failure_table(failed, ["reach", "push"]))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if "│" in line}
    assert "2" in rows["push"] and "2" in rows["all"] and "2" not in rows["reach"], rows


def test_sign_test_counts_the_discordant_pairs_and_gives_the_exact_binomial_p():
    from embodied.evaluation.rollouts import sign_test

    a = [True] * 9 + [False] * 1 + [True] * 5   # 9 pairs only a won, 1 only b won, 5 ties (both won)
    b = [False] * 9 + [True] * 1 + [True] * 5
    result = sign_test(a, b)
    assert (result["pairs"], result["a_only"], result["b_only"]) == (15, 9, 1)
    assert result["p"] == pytest.approx(2 * 11 / 1024)  # P(X <= 1), X ~ Bin(10, 1/2), two-sided
    assert sign_test(b, a)["p"] == result["p"]
    assert sign_test([True, False], [True, False])["p"] == 1.0  # no discordant pair says nothing
    with pytest.raises(ValueError, match="one to one"):
        sign_test([True], [True, False])


def test_given_scenes_are_played_in_order_and_a_short_list_is_named():
    from embodied.evaluation.rollouts import evaluate

    result = evaluate("expert", ["reach"], 2, scenes={"reach": [123, 7]}, progress=False)
    assert [r["seed"] for r in result["reach"]["runs"]] == [123, 7] and result["reach"]["success"] == 1.0
    with pytest.raises(ValueError, match=r"scenes\['reach'\] holds 1 seeds; expected 2"):
        evaluate("expert", ["reach"], 2, scenes={"reach": [123]}, progress=False)
    with pytest.raises(ValueError, match=r"scenes\['reach'\] holds 0 seeds; expected 2"):  # a family left out
        evaluate("expert", ["reach"], 2, scenes={"pick": [1, 2]}, progress=False)
