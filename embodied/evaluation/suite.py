"""What `scripts/evaluate.py` and the training jobs' final tables share: a policy from a name (a run, a
checkpoint, an adapter, an exported bundle, the scripted expert, random), the scripted expert's episodes
in the same result format, the versions a result depends on, and the table."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from embodied.errors import UserError


def load_policy(name: str, adapter: Path | None = None, precision: str = "fp32") -> tuple[object, dict]:
    """(policy, what it is): 'expert', 'random', an exported bundle, or a run / checkpoint folder (a
    LoRA fine-tune's checkpoint loads as its base plus the adapter; `adapter` adds another)."""
    from embodied.runtime.bundle import file_sha256

    if name in ("expert", "random"):
        if adapter is not None:
            raise UserError(f"--adapter applies to a trained policy, not {name!r}")
        return name, {"policy": name, "kind": name}  # the expert needs its env: evaluate() builds it
    path = Path(name)
    if (path / "policy_spec.json").is_file():
        from embodied.runtime.bundle import OnnxPolicy

        if adapter is not None:
            raise UserError("a bundle's adapters were merged at export; export the adapted policy instead")
        policy = OnnxPolicy(path, precision=precision)
        model = path / ("policy_int8.onnx" if precision == "int8" else "policy.onnx")
        return policy, {"policy": str(path), "kind": "bundle", "precision": precision,
                        "model_sha256": file_sha256(model)}
    from embodied.policies.checkpoint import resolve_checkpoint
    from embodied.policies.policy import VLAPolicy
    from embodied.threads import fit_threads

    if not path.exists():
        raise UserError(f"no policy {name!r}: expected 'expert', 'random', a run or checkpoint folder, or an "
                        "exported bundle")
    ckpt = resolve_checkpoint(path)
    fit_threads()  # torch runs the policy: one thread per usable core at most
    policy = VLAPolicy.load(ckpt)
    info = {"policy": str(path), "kind": "checkpoint", "checkpoint": str(ckpt),
            "model_sha256": file_sha256(ckpt / "model.safetensors")}
    if adapter is not None:
        policy.set_adapter(loaded := policy.load_adapter(adapter))
        info["adapter"] = {"name": loaded, "path": str(adapter)}
    return policy, info


def versions() -> dict:
    """What a result depends on besides the policy: the code's commit and the simulator and runtimes."""
    import importlib.metadata as md

    from embodied.paths import repo_root

    out = {"python": platform.python_version()}
    for package in ("embodied", "mujoco", "gymnasium", "numpy", "torch", "onnxruntime", "metaworld"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    try:
        git = ["git", "-C", str(repo_root())]
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        out["commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["commit"] = "unknown (not a git checkout)"
    return out


def results_table(title: str, columns: dict[str, dict], families: list[str]):
    """A rich Table: a row per family (and the mean), a column per policy: 'success% [95% interval]'."""
    from rich.table import Table

    from embodied.evaluation.rollouts import rate

    table = Table(title=title)
    table.add_column("family")
    for name in columns:
        table.add_column(name, justify="right")
    for f in [*families, "mean"]:
        table.add_row(f, *(rate(r[f]) for r in columns.values()))
    return table
