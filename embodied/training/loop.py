"""The training loop, top to bottom: build, resume, loop, and every periodic action called visibly."""

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
from embodied.data.store import EpisodeStore
from embodied.data.windows import VideoMix, WindowDataset, split_episodes
from embodied.errors import UserError
from embodied.policies.config import config_from_dict, load_preset
from embodied.policies.language import LanguageEncoder
from embodied.policies.model import FOCUS_SCALE, VLA
from embodied.policies.policy import VLAPolicy, build_spec
from embodied.training import distributed, finetune
from embodied.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from embodied.training.config import FinetuneConfig, TrainConfig

RELEASE_WINDOW = 8  # --release-boost draws more often the frames whose next 8 actions open the gripper
START_WINDOW = 3  # --start-boost draws more often each demonstration's first 3 frames


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


def train(cfg: TrainConfig, store_path: Path, runs_dir: Path) -> dict:
    """Train; returns the final evaluation (rank 0) or {} (other ranks)."""
    if isinstance(cfg, FinetuneConfig):
        cfg = finetune.resolve(cfg)
    for flag in ("release_boost", "start_boost"):
        if getattr(cfg, flag) < 1:
            raise UserError(f"{flag} must be >= 1 (1 = off), got {getattr(cfg, flag)}")
    if cfg.failure_videos < 0:
        raise UserError(f"failure_videos must be >= 0 (0 = none), got {cfg.failure_videos}")
    d = distributed.setup(cfg.device)
    torch.manual_seed(cfg.seed)
    run_dir = runs_dir / cfg.name
    store = EpisodeStore.open(store_path)

    # ---- data (fine-tuning: the base's architecture, maybe only the first N demonstrations) ------
    tune = cfg if isinstance(cfg, FinetuneConfig) else None
    base = finetune.load_base(tune.base) if tune and tune.base else None
    if base:
        finetune.check_fits(base[1], store)
        pcfg = config_from_dict(base[1]["config"])
    else:
        pcfg = load_preset(cfg.preset, head=cfg.head, obs_horizon=cfg.obs_horizon,
                           action_horizon=cfg.action_horizon, keypoints=cfg.keypoints,
                           keypoint_loss=cfg.keypoint_loss, film_pool=cfg.film_pool,
                           augment_shift=cfg.augment_shift)
    if tune and tune.episodes_per_family:
        train_eps, val_eps = finetune.few_episodes(store, tune.episodes_per_family)
    else:
        train_eps, val_eps = split_episodes(store.num_episodes, cfg.val_fraction, cfg.seed)
    ends = {"hold_after_end": cfg.hold_after_end, "keep_gripper": cfg.keep_gripper}
    data = WindowDataset(store_path, pcfg.obs_horizon, pcfg.action_horizon, episodes=train_eps, **ends)
    val = WindowDataset(store_path, pcfg.obs_horizon, pcfg.action_horizon, episodes=val_eps,
                        **ends) if len(val_eps) else None
    language = LanguageEncoder(pcfg.lang_tokens, pcfg.language_model, device=d.device)
    families = sorted(set(store.meta("family").tolist()))
    if cfg.video_store:  # action-free video, pseudo-labelled or with latent-action codes, in every batch
        if not (0 < cfg.video_fraction < 1 and cfg.video_weight >= 0):
            raise UserError(f"video_fraction must be in (0, 1) and video_weight >= 0; got {cfg.video_fraction}, "
                            f"{cfg.video_weight}")
        data = VideoMix(data, video_windows(cfg.video_store, store, pcfg), cfg.video_weight, store.actions().shape[1])
        if data.latent:
            pcfg = latent_config(pcfg, data.video.store.attrs["action_spec"], from_base=base is not None)

    # ---- model, optimizer, schedule ---------------------------------------------------------------
    model = VLA(pcfg, store.cameras, tuple(store.attrs["image_size"]), store.states().shape[1],
                store.actions().shape[1])
    model.set_stats(data.stats)
    stats, adapters = data.stats, None
    if base and tune.adapter != "scratch":  # lora: the frozen base with adapters; full: every base weight
        model, stats, adapters = finetune.from_base(tune, base, data.stats)
    if pcfg.latent_codes > 0 and not (isinstance(data, VideoMix) and data.latent):
        for name, p in model.named_parameters():  # no latent targets here: keep them out of training (and DDP)
            if "latent_" in name:
                p.requires_grad_(False)
    spec = build_spec(model, store.attrs, stats)
    if base and tune.adapter != "scratch":
        spec["base"] = {"checkpoint": str(base[2]), **({"hash": adapters.base["hash"]} if adapters else {})}
        spec["adapter"] = tune.name if adapters else None
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
            raise UserError(f"{last} was fine-tuned on other base weights than {base[2]} holds now; resume with "
                            "that base, or --fresh")
        if d.main:
            print(f"resuming {cfg.name} from {last.name} (step {start})")
    net = Objective(model)
    net = DistributedDataParallel(net) if d.world > 1 else net
    if cfg.compile and d.device.type == "cuda":
        net = torch.compile(net)
    amp = torch.autocast("cuda", torch.bfloat16, enabled=cfg.bf16 and d.device.type == "cuda")

    end = min(cfg.steps, cfg.stop_at or cfg.steps)
    if isinstance(data, VideoMix):
        groups, group_prob = data.sample_groups(cfg.video_fraction)
    else:
        groups, group_prob = data.sample_families if cfg.balance_families else None, None
    repeats = None
    if cfg.release_boost > 1 or cfg.start_boost > 1:
        repeats = (np.where(data.release_ahead(RELEASE_WINDOW), cfg.release_boost, 1)
                   * np.where(data.near_start(START_WINDOW), cfg.start_boost, 1))
    batches = StepBatches(len(data), cfg.batch_size * cfg.grad_accum, cfg.seed, start, end, d.rank, groups,
                          group_prob, repeats)
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
            inputs = _to_device(micro, model, language, d.device)
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
            periodic_eval(cfg, model, ema, val, language, d, families, log, done, cfg.eval_episodes, store.attrs)
        if (done % cfg.ckpt_every == 0 or done == end) and d.main:
            # a fine-tune's deliverable, the adapter alone (a few hundred kB), goes in with the resumable state
            extra = (lambda f, done=done: adapters.save(tune.name, f / "adapter", {"step": done, "dataset": str(
                store_path)})) if adapters else None
            save_checkpoint(run_dir / "checkpoints" / f"step_{done:06d}", model=model, optimizer=optimizer,
                            scheduler=scheduler, step=done, config=_jsonable(cfg), spec=spec, ema=ema, extra=extra)
    bar.close()

    # ---- the end -----------------------------------------------------------------------------------
    result = {}
    if d.main and end == cfg.steps:
        result = periodic_eval(cfg, model, ema, val, language, d, families, log, cfg.steps, cfg.final_eval_episodes,
                               store.attrs, video_dir=run_dir / "failures" if cfg.failure_videos else None)
        if log:
            log.plot(run_dir / "curves.png")
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
    samples get the mean state (0 once normalized)."""
    lang, mask = language.encode(list(batch["instruction"]))
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


def video_windows(path: Path, demos: EpisodeStore, pcfg) -> WindowDataset:
    """Windows of a labelled video store, checked to fit the demonstrations' cameras and image size."""
    video = EpisodeStore.open(path)
    if not set(demos.cameras) <= set(video.cameras) or video.attrs["image_size"] != demos.attrs["image_size"]:
        raise UserError(f"--video-store {path} has cameras {video.cameras} at {video.attrs['image_size']}; the "
                        f"demonstrations have {demos.cameras} at {demos.attrs['image_size']}")
    kind = (video.attrs.get("action_spec") or {}).get("kind")
    if not video.meta("has_actions").any() or not ("pseudo_labels" in video.attrs or kind == "latent"):
        raise UserError(f"--video-store {path} carries neither inverse-dynamics labels nor latent actions; make "
                        "one with scripts/label_video.py idm|latent")
    have = (video.states().shape[1], video.actions().shape[1])
    want = (demos.states().shape[1], demos.actions().shape[1])
    if have[0] != want[0] or (kind != "latent" and have[1] != want[1]):
        raise UserError(f"--video-store {path} has state/action sizes {have}; the demonstrations have {want}")
    return WindowDataset(path, pcfg.obs_horizon, pcfg.action_horizon, cameras=demos.cameras)


def latent_config(pcfg, spec: dict, from_base: bool):
    """The model config with the video's latent-action codebook (a base must already have the same one)."""
    want = {"latent_codes": int(spec["codes"]), "latent_groups": int(spec["groups"]),
            "latent_stride": int(spec["stride"])}
    if from_base:
        have = {k: getattr(pcfg, k) for k in want}
        if have != want:
            raise UserError(f"the video's latent actions {want} do not match the base's {have}")
        return pcfg
    return dataclasses.replace(pcfg, **want)


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


def periodic_eval(cfg: TrainConfig, model: VLA, ema, val, language, d, families: list[str], log, step: int,
                  episodes: int, store_attrs: dict, video_dir: Path | None = None) -> dict:
    """Validation loss and sim rollouts (success per family) of the weights that would be exported;
    with video_dir, mp4s of the first failed episodes of each family."""
    from embodied.evaluation.rollouts import evaluate

    weights = ema.module if ema is not None else model
    result = {"step": step, "split": env_config_split(store_attrs)}
    if val is not None:
        result["val_loss"] = validation_loss(weights, val, language, d.device)
    # the action names let the executor commit to gripper switches, as evaluate.py does with a checkpoint
    policy = VLAPolicy(weights, spec={"action_spec": store_attrs.get("action_spec", {})}, device=d.device,
                       language=language)
    env_config = {"image_size": tuple(store_attrs["image_size"]), "cameras": tuple(store_attrs["cameras"])}
    if result["split"] is not None:
        env_config["split"] = result["split"]
    if episodes > 0:
        result["rollouts"] = evaluate(policy, families, episodes, replan_every=cfg.replan_every,
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


def env_config_split(store_attrs: dict) -> str | None:
    """The instruction split the store was collected with: evaluation uses the same phrasings. None for a
    store of another robot than the tabletop's (Meta-World's sawyer: one instruction per task)."""
    from embodied.data.collect import ROBOT

    if store_attrs.get("robot", ROBOT) != ROBOT:
        return None
    return store_attrs.get("recipe", {}).get("split", "train")


class MetricsLog:
    """metrics.csv (one row per event; empty cells where a metric was not measured) and a PNG plot."""

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

    def plot(self, out: Path) -> Path:
        """Loss, validation loss, and success: the mean and each family (from evals.jsonl)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = list(csv.DictReader(self.path.open()))
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
        titles = ("train loss", "validation loss", "rollout success")
        for ax, key, title in zip(axes, ("loss", "val_loss", "success"), titles, strict=True):
            pts = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o" if key != "loss" else None, color="black",
                        label="mean" if key == "success" else None, linewidth=2 if key == "success" else 1)
            ax.set_title(title)
            ax.set_xlabel("step")
            if key != "success":
                ax.set_yscale("log")
        evals = self.path.parent / "evals.jsonl"
        if evals.exists():
            per_family: dict[str, list] = {}
            for line in evals.read_text().splitlines():
                e = json.loads(line)
                for f, v in e.get("rollouts", {}).items():
                    if f != "mean":
                        per_family.setdefault(f, []).append((e["step"], v["success"]))
            for f, pts in sorted(per_family.items()):
                axes[2].plot(*zip(*pts, strict=True), marker=".", linewidth=1, alpha=0.8, label=f)
        if axes[2].get_legend_handles_labels()[0]:
            axes[2].legend(fontsize=7, loc="upper left")
        axes[2].set_ylim(-0.02, 1.02)
        fig.tight_layout()
        fig.savefig(out, dpi=90)
        plt.close(fig)
        return out


def _jsonable(cfg: TrainConfig) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}
