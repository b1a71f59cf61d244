"""The training loop, top to bottom: build (build.py), resume, loop, and every periodic action called visibly."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from embodied.adapters.lora import base_hash
from embodied.data.windows import WindowDataset
from embodied.errors import UserError
from embodied.media import plot_curves
from embodied.policies.checkpoint import latest_checkpoint
from embodied.policies.language import LanguageEncoder, drop_padding
from embodied.policies.model import FOCUS_SCALE, VLA
from embodied.policies.policy import VLAPolicy
from embodied.training import distributed
from embodied.training.build import Run, build_run, check
from embodied.training.checkpoint import load_checkpoint, save_checkpoint
from embodied.training.config import TrainConfig


class StepBatches(torch.utils.data.Sampler):
    """Batch indices drawn from (seed, step, rank) alone: no sampler state, so resume is exact.

    With `groups` (a label per sample, e.g. its task family) every group is drawn equally often, so
    families with short episodes (reach: 8 steps) are not drowned by long ones (place: 44). `repeats` (an
    int per sample) puts a sample that many times in its group's pool, so it is drawn that much more often
    within its group; a group without repeats draws exactly what it would without them."""

    def __init__(self, n: int, batch: int, seed: int, start: int, steps: int, rank: int,
                 groups: np.ndarray | None = None, group_prob: np.ndarray | None = None,
                 repeats: np.ndarray | None = None):
        self.n, self.batch, self.seed, self.start, self.steps, self.rank = n, batch, seed, start, steps, rank
        members = [np.flatnonzero(groups == g) for g in np.unique(groups)] if groups is not None else None
        if repeats is not None:
            members = [np.repeat(m, repeats[m]) for m in (members or [np.arange(n)])]
        self.members = members
        self.group_prob = group_prob  # per group in np.unique order (default: equal)

    def __iter__(self):
        for step in range(self.start, self.steps):
            rng = np.random.default_rng([self.seed, step, self.rank])
            if self.members is None:
                yield rng.integers(0, self.n, self.batch).tolist()
            else:
                picks = rng.choice(len(self.members), self.batch, p=self.group_prob)
                yield [int(self.members[g][rng.integers(len(self.members[g]))]) for g in picks]

    def __len__(self):
        return self.steps - self.start


def train(cfg: TrainConfig, store_path: Path | str, runs_dir: Path) -> dict:
    """Train; returns the final evaluation (rank 0) or {} (other ranks)."""
    cfg = check(cfg)
    d = distributed.setup(cfg.device)
    torch.manual_seed(cfg.seed)
    run_dir = runs_dir / cfg.name
    run = build_run(cfg, store_path, d.device)
    model, data, adapters = run.model, run.data, run.adapters

    # ---- optimizer, schedule, EMA ------------------------------------------------------------------
    model.to(d.device)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # adapters: theirs only
    decay = [p for n, p in params if p.ndim >= 2 and "emb" not in n and "pos" not in n]
    no_decay = [p for n, p in params if not (p.ndim >= 2 and "emb" not in n and "pos" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, cfg.warmup, cfg.steps))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema > 0 else None

    # ---- resume ------------------------------------------------------------------------------------
    start = 0
    last = None if cfg.fresh else latest_checkpoint(run_dir)
    if last is not None:
        start = load_checkpoint(last, model=model, optimizer=optimizer, scheduler=scheduler, ema=ema)["step"]
        if adapters and base_hash(model) != adapters.base["hash"]:
            raise UserError(f"{last} was fine-tuned on other base weights than {run.base.checkpoint} holds now; "
                            "resume with that base, or --fresh")
        if d.main:
            print(f"resuming {cfg.name} from {last.name} (step {start})")
    net = Objective(model)
    net = DistributedDataParallel(net) if d.world > 1 else net
    if cfg.compile and d.device.type == "cuda":
        net = torch.compile(net)
    amp = torch.autocast("cuda", torch.bfloat16, enabled=cfg.bf16 and d.device.type == "cuda")

    end = min(cfg.steps, cfg.stop_at or cfg.steps)
    batches = StepBatches(len(data), cfg.batch_size * cfg.grad_accum, cfg.seed, start, end, d.rank,
                          run.sampling.groups, run.sampling.group_prob, run.sampling.repeats)
    loader = torch.utils.data.DataLoader(data, batch_sampler=batches, num_workers=cfg.workers,
                                         persistent_workers=cfg.workers > 0)
    log = MetricsLog(run_dir / "metrics.csv") if d.main else None
    if d.main:
        (run_dir / "config.json").write_text(json.dumps(_jsonable(cfg), indent=2))
    bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.name}", unit="step", disable=not d.main)
    timer, seen = time.perf_counter(), 0

    # ---- the loop ----------------------------------------------------------------------------------
    for step, batch in enumerate(loader, start=start):
        net.train()
        if cfg.paraphrase > 0:
            rng = np.random.default_rng([cfg.seed, step, d.rank, 2])
            batch["instruction"] = _paraphrased(batch, cfg.paraphrase, rng)
        gen = torch.Generator().manual_seed(int(np.random.default_rng([cfg.seed, step, d.rank, 1]).integers(2**62)))
        loss_sum = 0.0
        for micro in _split(batch, cfg.grad_accum):
            inputs = _to_device(micro, model, run.language, d.device)
            with amp:
                loss = net(inputs, gen)
            (loss / cfg.grad_accum).backward()
            loss_sum += float(loss.detach()) / cfg.grad_accum
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        seen += len(batch["action"])
        done = step + 1
        bar.update(1)

        if done % cfg.log_every == 0 or done == cfg.steps:
            rate = seen * d.world / (time.perf_counter() - timer)
            timer, seen = time.perf_counter(), 0
            loss_all = distributed.mean_across(loss_sum, d)
            bar.set_postfix(loss=f"{loss_all:.4f}", samples_s=f"{rate:.0f}")
            if log:
                log.write(step=done, loss=loss_all, lr=scheduler.get_last_lr()[0], grad_norm=grad_norm,
                          samples_per_s=rate)
        if cfg.eval_every and done % cfg.eval_every == 0 and done != cfg.steps and d.main:
            periodic_eval(run, ema, d, log, done, cfg.eval_episodes)
        if (done % cfg.ckpt_every == 0 or done == end) and d.main:
            # a fine-tune's deliverable, the adapter alone (a few hundred kB), goes in with the resumable state
            extra = (lambda f, done=done: adapters.save(cfg.name, f / "adapter", {"step": done, "dataset": str(
                store_path)})) if adapters else None
            save_checkpoint(run_dir / "checkpoints" / f"step_{done:06d}", model=model, optimizer=optimizer,
                            scheduler=scheduler, step=done, config=_jsonable(cfg), spec=run.spec, ema=ema,
                            extra=extra)
    bar.close()

    # ---- the end -----------------------------------------------------------------------------------
    result = {}
    if d.main and end == cfg.steps:
        result = periodic_eval(run, ema, d, log, cfg.steps, cfg.final_eval_episodes,
                               video_dir=run_dir / "failures" if cfg.failure_videos else None)
        if log:
            plot_curves(log.path, log.path.parent / "evals.jsonl", run_dir / "curves.png")
    distributed.teardown()
    return result


class Objective(torch.nn.Module):
    """The loss as a module's forward, so DDP and torch.compile wrap the whole training step."""

    def __init__(self, model: VLA):
        super().__init__()
        self.model = model

    def forward(self, inputs: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.model.loss(**inputs, generator=generator)


def _paraphrased(batch: dict, share: float, rng: np.random.Generator) -> list[str]:
    """The batch's instructions, `share` of them swapped for a training paraphrase of the same command."""
    from embodied.envs.scene import load_suite
    from embodied.envs.tasks import paraphrase

    suite, texts = load_suite(), list(batch["instruction"])
    families = batch.get("family", [""] * len(texts))
    return [paraphrase(text, family, suite, rng) if rng.random() < share else text
            for text, family in zip(texts, families, strict=True)]


def _to_device(batch: dict, model: VLA, language: LanguageEncoder, device: torch.device) -> dict:
    """A collated window batch -> VLA.loss inputs (normalized, on device). Video has no states: those
    samples get the mean state (0 once normalized). The instruction padding past the batch's longest is
    dropped: the same loss, 1.09x faster on 2 cores (scripts/bench_train.py --compare)."""
    lang, mask = drop_padding(*language.encode(list(batch["instruction"])))
    inputs = {
        "images": {c: v.to(device, non_blocking=True) for c, v in batch["images"].items()},
        "state": model.normalize_state(batch["state"].to(device).float()).nan_to_num(0.0),
        "lang": lang.to(device), "lang_mask": mask.to(device),
        "action": model.normalize_action(batch["action"].to(device).float()),
        "action_mask": batch["action_mask"].to(device),
        "focus": batch["focus"].to(device).float() / FOCUS_SCALE,
        "focus_px": {c: v.to(device).float() for c, v in batch["focus_px"].items()},
    }
    for key in ("weight", "latent"):  # from VideoMix
        if key in batch:
            inputs[key] = batch[key].to(device)
    return inputs


def _split(batch: dict, parts: int) -> list[dict]:
    if parts == 1:
        return [batch]
    n = len(batch["action"])
    size = math.ceil(n / parts)
    return [_slice(batch, slice(i, i + size)) for i in range(0, n, size)]


def _slice(value, sl):
    if isinstance(value, dict):
        return {k: _slice(v, sl) for k, v in value.items()}
    return value[sl]


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def validation_loss(model: VLA, val: WindowDataset, language: LanguageEncoder, device, batches: int = 8) -> float:
    model.eval()
    gen = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(val, batch_size=64, shuffle=True, generator=gen)
    losses = [float(model.loss(**_to_device(b, model, language, device), generator=gen))
              for b, _ in zip(loader, range(batches), strict=False)]
    return float(np.mean(losses))


def periodic_eval(run: Run, ema, d, log, step: int, episodes: int, video_dir: Path | None = None) -> dict:
    """Validation loss and sim rollouts (success per family) of the weights that would be exported;
    with video_dir, mp4s of the first failed episodes of each family."""
    from embodied.evaluation.rollouts import evaluate

    cfg, store_attrs = run.cfg, run.store.attrs
    weights = ema.module if ema is not None else run.model
    world = tabletop_config(store_attrs)
    result = {"step": step, "split": world.get("split"), "world": world.get("version"), "block": "selection"}
    if run.val is not None:
        result["val_loss"] = validation_loss(weights, run.val, run.language, d.device)
    # the action names let the executor commit to gripper switches, as evaluate.py does with a checkpoint
    policy = VLAPolicy(weights, spec={"action_spec": store_attrs.get("action_spec", {})}, device=d.device,
                       language=run.language)
    env_config = {"image_size": tuple(store_attrs["image_size"]), "cameras": tuple(store_attrs["cameras"])} | world
    if episodes > 0:
        result["rollouts"] = evaluate(policy, run.families, episodes, replan_every=cfg.replan_every,
                                      env_config=env_config, video_dir=video_dir,
                                      videos_per_family=cfg.failure_videos)
        result["success"] = result["rollouts"]["mean"]["success"]
    if log:
        log.write(step=step, val_loss=result.get("val_loss"), success=result.get("success"))
        with (log.path.parent / "evals.jsonl").open("a") as f:  # per-family success, one line per evaluation
            f.write(json.dumps(result) + "\n")
        if "rollouts" in result:
            per_family = "  ".join(f"{k} {100 * v['success']:.0f}%" for k, v in result["rollouts"].items()
                                   if k != "mean")
            tqdm.write(f"step {step}: val loss {result.get('val_loss', float('nan')):.4f}, success "
                       f"{100 * result['success']:.0f}% ({per_family})")
    weights.train()
    return result


def tabletop_config(store_attrs: dict) -> dict:
    """The instruction split and world version the store was collected with, which evaluation uses too (a store
    from before world versions is v0's); {} for a store of another robot than the tabletop's (Meta-World's
    sawyer: one instruction per task)."""
    from embodied.data.collect import ROBOT

    if store_attrs.get("robot", ROBOT) != ROBOT:
        return {}
    recipe = store_attrs.get("recipe", {})
    return {"split": recipe.get("split", "train"), "version": recipe.get("world", 0)}


class MetricsLog:
    """metrics.csv: one row per event; empty cells where a metric was not measured (media.plot_curves draws it)."""

    FIELDS = ["step", "time", "loss", "lr", "grad_norm", "samples_per_s", "val_loss", "success"]

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(",".join(self.FIELDS) + "\n")
        self.start = time.time()

    def write(self, **row) -> None:
        row["time"] = round(time.time() - self.start, 1)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.FIELDS).writerow({k: ("" if v is None else v) for k, v in row.items()})


def _jsonable(cfg: TrainConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
