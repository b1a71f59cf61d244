"""Run an exported bundle with numpy + onnxruntime (+ tokenizers for typed instructions): no torch.

    policy = OnnxPolicy("bundles/tiny")            # checks every file's hash before anything runs
    chunk = policy.act({"images": {...}, "state": ..., "instruction": "pick up the red cube"})  # (H, A)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from pathlib import Path

import numpy as np

from embodied.errors import UserError

BUNDLE_FORMAT = 1


class BundleError(UserError):
    """A bundle is missing a file, altered, or points outside itself."""


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def open_bundle(path: str | Path) -> dict:
    """policy_spec.json, after checking every listed file: present, a plain file inside the bundle, its
    sha256 as recorded; and that no graph reads external data from outside the bundle."""
    root = Path(path)
    spec_path = root / "policy_spec.json"
    if not spec_path.is_file():
        raise BundleError(f"{root} is not a bundle (no policy_spec.json); make one with scripts/export_policy.py")
    try:
        spec = json.loads(spec_path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{spec_path}: not valid JSON ({e})") from e
    if spec.get("format", 0) > BUNDLE_FORMAT:
        raise BundleError(f"{root}: bundle format {spec['format']} is newer than this runtime reads ({BUNDLE_FORMAT})")
    for name in ("policy.onnx", "encoder.onnx", "tokenizer.json"):
        if name not in spec.get("files", {}):
            raise BundleError(f"{spec_path} lists no {name}")
    enc = spec.get("instruction_encoder", {})
    if (enc.get("graph"), enc.get("tokenizer")) != ("encoder.onnx", "tokenizer.json"):
        raise BundleError(f"{spec_path}: the instruction encoder must be the bundle's own encoder.onnx and "
                          f"tokenizer.json, not {enc.get('graph')!r} / {enc.get('tokenizer')!r}")
    for name, digest in spec["files"].items():
        _check_inside(root, name)
        file = root / name
        if not file.is_file():
            raise BundleError(f"{root}: {name} is missing")
        if file_sha256(file) != digest:
            raise BundleError(f"{root}: {name} does not match its sha256 in policy_spec.json (altered or truncated)")
    for name in spec["files"]:
        if name.endswith(".onnx"):
            _check_external_data(root, name, spec["files"])
    return spec


def _check_inside(root: Path, name: str) -> None:
    target = root / name
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise BundleError(f"{root}: {name!r} points outside the bundle")
    if target.is_symlink() or not target.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{root}: {name} is a symlink or resolves outside the bundle; bundles hold plain files")


def _check_external_data(root: Path, name: str, listed: dict) -> None:
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    model = onnx.load(str(root / name), load_external_data=False)
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if Path(location).is_absolute() or ".." in Path(location).parts:
            raise BundleError(f"{root}: {name} reads tensor {tensor.name!r} from {location!r}, outside the bundle")
        _check_inside(root, location)
        if location not in listed:
            raise BundleError(f"{root}: {name} reads external data {location!r}, which policy_spec.json does not hash")


class InstructionEncoder:
    """Typed text -> (tokens (1, L, 384) float32, mask (1, L) bool), with the bundle's tokenizer and
    encoder.onnx; cached per text."""

    def __init__(self, root: Path, spec: dict, session_options=None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        enc = spec["instruction_encoder"]
        self.max_tokens = enc["max_tokens"]
        self.tokenizer = Tokenizer.from_file(str(root / enc["tokenizer"]))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.enable_padding(length=self.max_tokens, pad_id=0, pad_token="[PAD]")
        self.session = ort.InferenceSession(str(root / enc["graph"]), session_options,
                                            providers=["CPUExecutionProvider"])
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(text, str):
            raise UserError(f"an instruction is a str, got {type(text).__name__}")
        if text not in self._cache:
            ids = self.tokenizer.encode(text)
            input_ids = np.array([ids.ids], np.int64)
            mask = np.array([ids.attention_mask], np.int64)
            tokens = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
            self._cache[text] = (tokens.astype(np.float32), mask.astype(bool))
        return self._cache[text]


class OnnxPolicy:
    """The Policy contract over an exported bundle: raw observations in, a chunk in env units out."""

    def __init__(self, bundle: str | Path, precision: str = "fp32", threads: int | None = None, seed: int = 0,
                 warmup: int = 3):
        """`warmup` runs on a blank observation before the constructor returns: onnxruntime's first runs are
        several times slower, and a robot must not pay them on its first plan. `ready_s`: load + warm-up."""
        import time

        import onnxruntime as ort

        began = time.perf_counter()

        self.root = Path(bundle)
        self.spec = open_bundle(self.root)
        graph = {"fp32": "policy.onnx", "int8": "policy_int8.onnx"}.get(precision)
        if graph is None or graph not in self.spec["files"]:
            have = [p for p, g in (("fp32", "policy.onnx"), ("int8", "policy_int8.onnx")) if g in self.spec["files"]]
            raise BundleError(f"{self.root}: no {precision!r} policy; this bundle has {have}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.enable_cpu_mem_arena = False  # batch-1 graphs: the arena costs memory and, measured, ~20% latency
        self.session = ort.InferenceSession(str(self.root / graph), options, providers=["CPUExecutionProvider"])
        self.feeds = {i.name for i in self.session.get_inputs()}
        self.language = InstructionEncoder(self.root, self.spec, options)
        self.cameras, self.obs_horizon = self.spec["cameras"], self.spec["obs_horizon"]
        self.image_shape = (*self.spec["image_size"], 3)
        self._history: dict[int, deque] = {}
        blank = {"images": {c: np.zeros(self.image_shape, np.uint8) for c in self.cameras}, "instruction": "warm up",
                 "state": np.zeros(self.spec["state_dim"], np.float32)}
        self.rng = np.random.default_rng(seed)
        for _ in range(warmup):
            self.act(blank)
        self.reset()
        self.rng = np.random.default_rng(seed)  # warm-up leaves no trace: the same seed, the same chunks
        self.ready_s = time.perf_counter() - began

    def reset(self) -> None:
        self._history.clear()

    def act_batch(self, observations: list[dict]) -> np.ndarray:
        """One chunk per observation (the graph runs batch 1); observation i continues the history of
        earlier calls' i-th, as VLAPolicy.act_batch: in-process evaluation runs bundles too."""
        return np.stack([self.act(obs, i) for i, obs in enumerate(observations)])

    def act(self, observation: dict, index: int = 0) -> np.ndarray:  # -> float32 (H, A)
        self.check(observation)
        history = self._history.setdefault(index, deque(maxlen=self.obs_horizon))
        if not history:
            history.extend([observation] * self.obs_horizon)  # the first frame repeats, as in training
        else:
            history.append(observation)
        frames = list(history)
        lang, mask = self.language.encode(observation["instruction"])
        feed = {f"image_{c}": np.stack([o["images"][c] for o in frames])[None] for c in self.cameras}
        feed |= {"state": np.stack([o["state"] for o in frames]).astype(np.float32)[None], "lang": lang,
                 "lang_mask": mask}
        if "noise" in self.feeds:
            shape = (1, self.spec["chunk_size"], self.spec["action_dim"])
            feed["noise"] = self.rng.standard_normal(shape).astype(np.float32)
        if "prefix" in self.feeds:  # real-time chunking: the actions the robot committed to meanwhile
            feed["prefix"], feed["prefix_len"] = self._prefix(observation.get("prefix"))
        return self.session.run(None, {k: v for k, v in feed.items() if k in self.feeds})[0][0]

    def _prefix(self, committed) -> tuple[np.ndarray, np.ndarray]:
        prefix = np.zeros((1, self.spec["chunk_size"], self.spec["action_dim"]), np.float32)
        k = 0 if committed is None else min(len(committed), self.spec.get("rtc", 0))
        if k:
            committed = np.asarray(committed, np.float32)
            if committed.ndim != 2 or committed.shape[1] != self.spec["action_dim"]:
                raise UserError(f"prefix: expected float (k, {self.spec['action_dim']}), got {committed.shape}")
            prefix[0, :k] = committed[:k]
        return prefix, np.array([k], np.int64)

    @property
    def continues_prefix(self) -> bool:
        """Whether this bundle was trained for real-time chunking (takes an observation's "prefix")."""
        return "prefix" in self.feeds

    def check(self, observation: dict) -> None:
        """Wrong shapes, dtypes or cameras are refused before anything runs."""
        if not isinstance(observation, dict) or not {"images", "state", "instruction"} <= set(observation):
            raise UserError("an observation is a dict with images, state and instruction")
        images = observation["images"]
        unknown = sorted(set(images) - set(self.cameras))
        missing = sorted(set(self.cameras) - set(images))
        if unknown or missing:
            raise UserError(f"cameras: this policy reads {self.cameras}; got unknown {unknown}, missing {missing}")
        for c in self.cameras:
            img = np.asarray(images[c])
            if img.shape != self.image_shape or img.dtype != np.uint8:
                raise UserError(f"camera {c!r}: expected uint8 {self.image_shape}, got {img.dtype} {img.shape} "
                                "(resize with embodied.runtime.camera.fit_frame)")
        state = np.asarray(observation["state"])
        if state.shape != (self.spec["state_dim"],) or not np.issubdtype(state.dtype, np.floating):
            raise UserError(f"state: expected float ({self.spec['state_dim']},), got {state.dtype} {state.shape}")
