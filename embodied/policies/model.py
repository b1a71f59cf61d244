"""The VLA Transformer: language, camera and state tokens in, an action chunk out."""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from embodied.policies.config import PolicyConfig

LANG_WIDTH = 384  # all-MiniLM-L6-v2 token states
FOCUS_SCALE = 0.2  # m: focus offsets are predicted in these units (the workspace is about +-0.4 m)


class VisionEncoder(nn.Module):
    """Stride-2 conv stages with FiLM from the instruction; (B, 3, H, W) -> (B, P, d) tokens, plus one
    keypoint token (B, 1, d) when keypoints > 0."""

    def __init__(self, channels: list[int], d_model: int, film: bool, keypoints: int = 0, keypoint_stage: int = 2):
        super().__init__()
        self.keypoint_stage = keypoint_stage
        self.keypoints = SpatialSoftmax(channels[keypoint_stage], keypoints, d_model) if keypoints else None
        widths = [3, *channels]
        pairs = zip(widths, channels, strict=False)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in pairs)
        self.norms = nn.ModuleList(nn.GroupNorm(min(8, c), c) for c in channels)
        self.films = nn.ModuleList(nn.Linear(LANG_WIDTH, 2 * c) for c in channels) if film else None
        if film:
            for f in self.films:  # start as identity
                nn.init.zeros_(f.weight)
                nn.init.zeros_(f.bias)
        self.out = nn.Linear(channels[-1], d_model)

    def forward(self, x: torch.Tensor, lang: torch.Tensor, with_points: bool = False):
        """-> tokens (B, h*w [+1], d), and with_points the keypoints' image positions (B, K, 2) as (x, y)
        in [-1, 1] of the input's width and height (left/top edge = -1)."""
        extra, size, points = [], x.shape[-2:], None
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            x = norm(conv(x))
            if self.films is not None:
                gamma, beta = self.films[i](lang).chunk(2, dim=-1)  # (B, C) each
                x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
            x = F.gelu(x)
            if self.keypoints is not None and i == self.keypoint_stage:
                pts = self.keypoints.points(x)  # (B, K, 3)
                extra.append(self.keypoints.proj(pts.flatten(1))[:, None])  # (B, 1, d)
                points = _grid_to_image(pts[..., :2], x.shape[-2:], size, 2 ** (i + 1))
        tokens = torch.cat([self.out(x.flatten(2).transpose(1, 2)), *extra], dim=1)  # (B, h*w [+1], d)
        return (tokens, points) if with_points else tokens


def _grid_to_image(xy: torch.Tensor, grid: tuple[int, int], size: tuple[int, int], stride: int) -> torch.Tensor:
    """Spatial-softmax positions (..., 2) on an (h, w) grid (cell centres at -1..1) -> image positions in
    [-1, 1] of an (H, W) input: cell i of a stack of stride-2, kernel-3, padding-1 convs is centred on
    input pixel stride * i."""
    (h, w), (height, width) = grid, size
    cells = (xy + 1) / 2 * xy.new_tensor([w - 1, h - 1])  # (..., 2) cell index
    pixels = stride * cells + 0.5  # continuous pixel coordinate of the receptive field's centre
    return 2 * pixels / xy.new_tensor([width, height]) - 1


class SpatialSoftmax(nn.Module):
    """K feature maps -> their soft-argmax image positions (x, y) in [-1, 1] -> one token (B, 1, d).
    Because the maps come after FiLM, a keypoint can follow "the red cube" rather than any cube."""

    def __init__(self, channels: int, k: int, d_model: int):
        super().__init__()
        self.maps = nn.Conv2d(channels, k, 1)
        self.log_temp = nn.Parameter(torch.zeros(()))
        self.proj = nn.Linear(3 * k, d_model)

    def points(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, h, w) -> (B, K, 3): each map's expected position (x, y in [-1, 1], left/top = -1) and
        its peak logit (how strongly the feature is present)."""
        logits = self.maps(x)  # (B, K, h, w)
        b, k, h, w = logits.shape
        attn = torch.softmax(logits.flatten(2) * self.log_temp.exp(), dim=-1)  # (B, K, h*w)
        ys = torch.linspace(-1, 1, h, device=x.device).repeat_interleave(w)
        xs = torch.linspace(-1, 1, w, device=x.device).repeat(h)
        peak = logits.flatten(2).amax(-1)  # (B, K)
        return torch.stack([attn @ xs, attn @ ys, peak], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, 1, d)
        return self.proj(self.points(x).flatten(1))[:, None]


def random_shift(x: torch.Tensor, pad: int, generator: torch.Generator | None):
    """Shift each image by up to `pad` pixels (edge-padded), as in DrQ. x: (B, C, H, W) float ->
    (shifted, moved): moved (B, 2) is how far each image's content moved, (x, y) in pixels."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad,) * 4, mode="replicate")
    shifts = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device="cpu").to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + shifts[:, :1]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + shifts[:, 1:]  # (B, W)
    idx = torch.arange(b, device=x.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    return shifted, (pad - shifts).flip(-1)  # output pixel c shows input pixel c + shift - pad


class VLA(nn.Module):
    """Tokens: [instruction (L)] [camera c, frame t: P each] [state, frame t] [action queries (H)].

    forward(...) -> (B, H, A): the normalized action chunk (regression head) or the flow velocity at
    (noisy_action, time) (flow head).
    """

    def __init__(self, cfg: PolicyConfig, cameras: list[str], image_size: tuple[int, int], state_dim: int,
                 action_dim: int):
        super().__init__()
        self.cfg, self.cameras = cfg, list(cameras)
        self.action_dim, d = action_dim, cfg.d_model
        self.vision = nn.ModuleDict({c: VisionEncoder(cfg.vision_channels, d, cfg.film, cfg.keypoints,
                                                      cfg.keypoint_stage) for c in cameras})
        stride = 2 ** len(cfg.vision_channels)
        patches = math.ceil(image_size[0] / stride) * math.ceil(image_size[1] / stride) + (cfg.keypoints > 0)
        self.lang_proj = nn.Linear(LANG_WIDTH, d)
        if cfg.film and cfg.film_pool != "mean":
            self.film_query = nn.Sequential(nn.Linear(state_dim, d), nn.GELU(), nn.Linear(d, LANG_WIDTH))
            nn.init.zeros_(self.film_query[-1].weight)  # a zero query attends evenly: starts as the mean
            nn.init.zeros_(self.film_query[-1].bias)
        self.state_proj = nn.Linear(state_dim, d)
        self.patch_pos = nn.Parameter(torch.zeros(patches, d))
        self.camera_emb = nn.Parameter(torch.zeros(len(cameras), d))
        self.frame_emb = nn.Parameter(torch.zeros(cfg.obs_horizon, d))
        self.lang_pos = nn.Parameter(torch.zeros(cfg.lang_tokens, d))
        self.queries = nn.Parameter(torch.zeros(cfg.action_horizon, d))
        if cfg.focus_loss > 0:
            self.focus_query = nn.Parameter(torch.zeros(1, d))
            self.focus_out = nn.Linear(d, 3)
        if cfg.latent_codes > 0:
            self.latent_queries = nn.Parameter(torch.zeros(cfg.action_horizon // cfg.latent_stride, d))
            self.latent_head = nn.Linear(d, cfg.latent_groups * cfg.latent_codes)
        if cfg.rtc > 0:  # a committed action (normalized) and its flag, added to its query
            self.prefix_proj = nn.Linear(action_dim + 1, d)
        if cfg.head == "flow":
            self.noisy_proj = nn.Linear(action_dim, d)
            self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.backbone = nn.ModuleList(Block(d, cfg.heads, int(cfg.mlp_ratio * d), cfg.dropout)
                                      for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(d)
        self.action_head = nn.Linear(d, action_dim)
        # normalization statistics live in the weights, so they travel with every checkpoint
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.register_buffer("action_low", -torch.ones(action_dim))
        self.register_buffer("action_high", torch.ones(action_dim))
        for p in (self.patch_pos, self.camera_emb, self.frame_emb, self.lang_pos, self.queries):
            nn.init.normal_(p, std=0.02)
        if cfg.latent_codes > 0:
            nn.init.normal_(self.latent_queries, std=0.02)
        if cfg.focus_loss > 0:
            nn.init.normal_(self.focus_query, std=0.02)

    def _load_from_state_dict(self, state, prefix, *args, **kwargs):
        _rename_legacy_keys(state, prefix)
        super()._load_from_state_dict(state, prefix, *args, **kwargs)

    def set_stats(self, stats: dict) -> None:
        """From a store's stats(): state mean/std, action min/max."""
        with torch.no_grad():
            self.state_mean.copy_(torch.tensor(stats["state"]["mean"]))
            self.state_std.copy_(torch.tensor(stats["state"]["std"]).clamp(min=1e-3))
            self.action_low.copy_(torch.tensor(stats["action"]["min"]))
            self.action_high.copy_(torch.tensor(stats["action"]["max"]))

    def normalize_state(self, state: torch.Tensor) -> torch.Tensor:
        return (state - self.state_mean) / self.state_std

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:  # to [-1, 1] per dimension
        span = (self.action_high - self.action_low).clamp(min=1e-6)
        return 2 * (action - self.action_low) / span - 1

    def denormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self.action_low + (action.clamp(-1, 1) + 1) / 2 * (self.action_high - self.action_low)

    def forward(self, images: dict[str, torch.Tensor], state: torch.Tensor, lang: torch.Tensor,
                lang_mask: torch.Tensor, noisy_action: torch.Tensor | None = None, time: torch.Tensor | None = None,
                generator: torch.Generator | None = None, with_focus: bool = False, prefix=None, prefix_len=None):
        """images: {camera: uint8 (B, T, H, W, 3)}; state: (B, T, S) normalized; lang: (B, L, 384);
        lang_mask: bool (B, L), True for real tokens; noisy_action: (B, H, A), time: (B,) for flow.
        with_focus: also return the focus prediction (B, 3) in FOCUS_SCALE units (needs focus_loss > 0).
        prefix: (B, H, A) normalized actions already committed, the first prefix_len (B,) of them real (rtc > 0)."""
        out = self.outputs(images, state, lang, lang_mask, noisy_action, time, generator, with_focus,
                           prefix=prefix, prefix_len=prefix_len)
        return (out["chunk"], out["focus"]) if with_focus else out["chunk"]

    def outputs(self, images, state, lang, lang_mask, noisy_action=None, time=None, generator=None,
                with_focus: bool = False, with_latent: bool = False, with_points: bool = False, prefix=None,
                prefix_len=None) -> dict:
        """{"chunk": (B, H, A), "focus": (B, 3) or None, "latent": logits (B, H/stride, groups, codes) or None,
        "points": None or {camera: (B, K, 2)}, the current frame's keypoints in unshifted image coordinates
        (see VisionEncoder.forward)}.
        Latent-action query tokens are added only with_latent (pretraining on latent-labelled video), and no
        other token attends to them, so the action chunk is computed the same with or without them."""
        b, t = state.shape[:2]
        film_lang = self.film_lang(state, lang, lang_mask).flatten(0, 1)  # (B*T, 384)
        tokens, points = [self.lang_proj(lang) + self.lang_pos[: lang.shape[1]]], {}
        for k, cam in enumerate(self.cameras):
            x = images[cam].flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0 - 0.5  # (B*T, 3, H, W)
            moved = x.new_zeros(x.shape[0], 2)
            if self.training and self.cfg.augment_shift:
                x, moved = random_shift(x, self.cfg.augment_shift, generator)
            feats = self.vision[cam](x, film_lang, with_points)  # (B*T, P, d)
            if with_points:  # undo the shift, so the points are where things are in the recorded frame
                feats, pts = feats
                pts = pts - 2 * moved[:, None] / moved.new_tensor([x.shape[-1], x.shape[-2]])
                points[cam] = pts.unflatten(0, (b, t))[:, -1]  # (B, K, 2)
            feats = feats.unflatten(0, (b, t)) + self.patch_pos + self.camera_emb[k] + self.frame_emb[:, None]
            tokens.append(feats.flatten(1, 2))  # (B, T*P, d)
        tokens.append(self.state_proj(state) + self.frame_emb)  # (B, T, d)
        latent_at = sum(tok.shape[1] for tok in tokens)
        if with_latent:
            tokens.append(self.latent_queries.expand(b, -1, -1))  # (B, H/stride, d)
        queries = self.queries.expand(b, -1, -1)
        if self.cfg.head == "flow":
            time_emb = self.time_mlp(_time_features(time, queries.shape[-1]))  # (B, d)
            queries = queries + self.noisy_proj(noisy_action) + time_emb[:, None]
        if self.cfg.rtc > 0:
            queries = queries + self.prefix_proj(self._prefix_input(prefix, prefix_len, queries))
        if self.cfg.focus_loss > 0:
            tokens.append(self.focus_query.expand(b, -1, -1))  # (B, 1, d), just before the action queries
        tokens.append(queries)
        x = torch.cat(tokens, dim=1)  # (B, N, d)
        keep = torch.ones(b, x.shape[1], dtype=torch.bool, device=x.device)
        keep[:, : lang_mask.shape[1]] = lang_mask
        n_latent = self.latent_queries.shape[0] if with_latent else 0
        keep[:, latent_at: latent_at + n_latent] = False  # read-outs only
        attend = keep[:, None, None, :]  # (B, 1, 1, N): every token attends to the real tokens only
        for block in self.backbone:
            x = block(x, attend)
        x = self.norm(x)
        out = {"chunk": self.action_head(x[:, -self.cfg.action_horizon:]), "focus": None, "latent": None,  # (B, H, A)
               "points": points if with_points else None}
        if with_focus:
            out["focus"] = self.focus_out(x[:, -self.cfg.action_horizon - 1])  # (B, 3)
        if with_latent:
            logits = self.latent_head(x[:, latent_at: latent_at + n_latent])  # (B, H/stride, G*K)
            out["latent"] = logits.unflatten(-1, (self.cfg.latent_groups, self.cfg.latent_codes))
        return out

    def _prefix_input(self, prefix, prefix_len, queries) -> torch.Tensor:
        """(B, H, A + 1): each committed action with a 1, zeros past the prefix (and without one)."""
        b, h = queries.shape[:2]
        if prefix is None:
            return queries.new_zeros(b, h, self.action_dim + 1)
        real = (torch.arange(h, device=queries.device)[None] < prefix_len[:, None]).to(queries.dtype)[..., None]
        return torch.cat([prefix.to(queries.dtype) * real, real], dim=-1)

    def film_lang(self, state: torch.Tensor, lang: torch.Tensor, lang_mask: torch.Tensor) -> torch.Tensor:
        """The instruction vector FiLM reads at each frame, (B, T, 384): see film_weights."""
        return self.film_weights(state, lang, lang_mask) @ lang

    def film_weights(self, state: torch.Tensor, lang: torch.Tensor, lang_mask: torch.Tensor) -> torch.Tensor:
        """How FiLM weighs the instruction's tokens at each frame, (B, T, L): evenly over the real tokens
        ('mean'), by attention whose query comes from that frame's state ('state'), or the average of the
        two ('mean+state')."""
        even = (lang_mask.float() / lang_mask.sum(1, keepdim=True).clamp(min=1))[:, None]  # (B, 1, L)
        if self.cfg.film_pool == "mean" or not self.cfg.film:
            return even.expand(-1, state.shape[1], -1)
        scores = self.film_query(state) @ lang.transpose(1, 2) / math.sqrt(LANG_WIDTH)  # (B, T, L)
        attn = scores.masked_fill(~lang_mask[:, None], torch.finfo(scores.dtype).min).softmax(-1)
        return attn if self.cfg.film_pool == "state" else (attn + even) / 2

    def loss(self, images, state, lang, lang_mask, action, action_mask, generator=None, focus=None, weight=None,
             latent=None, focus_px=None) -> torch.Tensor:
        """Training loss on normalized actions (B, H, A) with padding mask (B, H) or (B, H, A); plus, with
        focus_loss > 0 and `focus` (B, 3) in FOCUS_SCALE units (NaN rows unknown), the weighted auxiliary focus
        loss.
        weight: (B,) per-sample loss weight (e.g. pseudo-labelled video < 1). latent: int64 (B, H, G)
        latent-action codes of each frame (-1 where unknown; such samples carry no action: mask False).
        focus_px: {camera: (B, 2)} where the named thing appears in the camera's recorded frame (NaN where
        unknown); with keypoint_loss > 0, each such camera's first keypoint is pulled there (L1)."""
        w = torch.ones(action.shape[0], device=action.device, dtype=action.dtype) if weight is None else weight
        mask = (action_mask if action_mask.dim() == 3 else action_mask[..., None]).expand_as(action)
        mask = mask.to(action.dtype) * w[:, None, None]
        prefix = prefix_len = None
        if self.cfg.rtc > 0:  # condition on the first d true actions and learn the rest: half the samples d = 0
            # (no delay: every position must be learned too), the others d uniform in 1..rtc
            d = torch.randint(1, self.cfg.rtc + 1, (action.shape[0],), generator=generator)
            prefix_len = (d * (torch.rand(action.shape[0], generator=generator) < 0.5)).to(action.device)
            prefix = action
            mask = mask * (torch.arange(action.shape[1], device=action.device)[None] >= prefix_len[:, None])[..., None]
        aux = focus is not None and self.cfg.focus_loss > 0
        pull = {c: v for c, v in (focus_px or {}).items() if c in self.cameras} if self.cfg.keypoint_loss > 0 else {}
        with_latent = latent is not None  # even with no code in this batch: DDP needs the same graph each step
        if with_latent and self.cfg.latent_codes <= 0:
            raise ValueError("latent-action targets need a model built with latent_codes > 0")
        if self.cfg.head == "regression":
            out = self.outputs(images, state, lang, lang_mask, generator=generator, with_focus=aux,
                               with_latent=with_latent, with_points=bool(pull), prefix=prefix, prefix_len=prefix_len)
            err = (out["chunk"] - action).abs()
        else:
            noise = torch.randn(action.shape, generator=generator, device="cpu").to(action.device, action.dtype)
            time = torch.rand(action.shape[0], generator=generator, device="cpu").to(action.device, action.dtype)
            noisy = (1 - time[:, None, None]) * noise + time[:, None, None] * action
            out = self.outputs(images, state, lang, lang_mask, noisy, time, generator=generator, with_focus=aux,
                               with_latent=with_latent, with_points=bool(pull), prefix=prefix, prefix_len=prefix_len)
            err = (out["chunk"] - (action - noise)) ** 2  # velocity of the straight path noise -> action
        loss = (err * mask).sum() / mask.sum().clamp(min=1e-6)
        if aux:  # masked rather than indexed, so every step uses the focus head (as DDP requires)
            known = torch.isfinite(focus).all(-1, keepdim=True).to(action.dtype)  # (B, 1)
            diff = (out["focus"] - focus.nan_to_num(0.0)).abs() * known
            loss = loss + self.cfg.focus_loss * diff.sum() / (known.sum() * 3).clamp(min=1)
        for cam, target in pull.items():  # masked, not indexed: the same graph every step (DDP)
            known = torch.isfinite(target).all(-1, keepdim=True).to(action.dtype)  # (B, 1)
            diff = (out["points"][cam][:, 0] - target.nan_to_num(0.0)).abs() * known * w[:, None]
            loss = loss + self.cfg.keypoint_loss * diff.sum() / (known.sum() * 2).clamp(min=1)
        if with_latent:
            target = latent[:, :: self.cfg.latent_stride][:, : out["latent"].shape[1]]  # (B, H/stride, G)
            ce = F.cross_entropy(out["latent"].flatten(0, 2), target.clamp(min=0).flatten(), reduction="none")
            valid = (target >= 0).flatten().to(ce.dtype)
            weighted = valid * w.repeat_interleave(target[0].numel())  # the sample's weight scales the term
            loss = loss + (ce * weighted).sum() / valid.sum().clamp(min=1)
        return loss

    @torch.no_grad()
    def sample(self, images, state, lang, lang_mask, generator=None, prefix=None, prefix_len=None) -> torch.Tensor:
        """The normalized action chunk (B, H, A); with rtc > 0, continuing a committed prefix (see forward)."""
        if self.cfg.head == "regression":
            return self(images, state, lang, lang_mask, prefix=prefix, prefix_len=prefix_len)
        b = state.shape[0]
        x = torch.randn((b, self.cfg.action_horizon, self.action_dim), generator=generator, device="cpu").to(
            state.device)
        dt = 1.0 / self.cfg.flow_steps
        for i in range(self.cfg.flow_steps):  # Euler integration of the learned velocity field
            time = torch.full((b,), i * dt, device=state.device)
            x = x + dt * self(images, state, lang, lang_mask, x, time, prefix=prefix, prefix_len=prefix_len)
        return x


class Block(nn.Module):
    """Pre-norm Transformer layer with plainly named projections (`attn.qkv`, `attn.out`, `mlp.fc1`,
    `mlp.fc2`), the modules LoRA adapters target. torch's nn.TransformerEncoderLayer hides its attention
    projections inside nn.MultiheadAttention and, in eval mode, a fused kernel that reads their weights
    directly, so an adapter there would train but be ignored at inference."""

    def __init__(self, d: int, heads: int, hidden: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.ModuleDict({"qkv": nn.Linear(d, 3 * d), "out": nn.Linear(d, d)})
        self.mlp = nn.ModuleDict({"fc1": nn.Linear(d, hidden), "fc2": nn.Linear(hidden, d)})
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """x: (B, N, d); attend: bool (B, 1, 1, N), True where a key may be attended to."""
        q, k, v = self.attn["qkv"](self.norm1(x)).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend,  # (B, heads, N, d/heads)
                                           dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.attn["out"](a.transpose(1, 2).flatten(2)))
        return x + self.drop(self.mlp["fc2"](self.drop(F.gelu(self.mlp["fc1"](self.norm2(x))))))


_LEGACY = [  # checkpoints written before the Block rewrite (nn.TransformerEncoder) -> today's names
    (r"backbone\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$", r"backbone.\1.attn.qkv.\2"),
    (r"backbone\.layers\.(\d+)\.self_attn\.out_proj\.", r"backbone.\1.attn.out."),
    (r"backbone\.layers\.(\d+)\.linear1\.", r"backbone.\1.mlp.fc1."),
    (r"backbone\.layers\.(\d+)\.linear2\.", r"backbone.\1.mlp.fc2."),
    (r"backbone\.layers\.(\d+)\.norm", r"backbone.\1.norm"),
    (r"^out\.", "action_head."),
]


def _rename_legacy_keys(state: dict, prefix: str) -> None:
    for key in [k for k in state if k.startswith(prefix)]:
        name = key[len(prefix):]
        for pattern, new in _LEGACY:
            name = re.sub(pattern, new, name)
        if prefix + name != key:
            state[prefix + name] = state.pop(key)


def _time_features(time: torch.Tensor, dim: int) -> torch.Tensor:  # (B,) -> (B, dim) sinusoidal
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=time.device) / half)
    angles = time[:, None].float() * 1000.0 * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)
