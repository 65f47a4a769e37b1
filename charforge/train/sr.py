"""Training the upscaler on exact creator pairs (docs/upscale.md).

The built-in creator renders the same character at any size, so (64 px, 128 px, 256 px) triples of one
parameter set are free and exact. The 64 px input then goes through a degradation model that covers what the
upscaler meets: the softness of GAN outputs (Gaussian blur), resampling, noise and JPEG, each with its own
probability, and a clean share. Colour channels are permuted on input and target together (the network must
not learn the creator's palette), and images are flipped.

Every step's randomness comes from `numpy.random.default_rng([seed, step])`, so a run resumed from its last
checkpoint continues exactly as if never stopped (tested). Checkpoints are safetensors (weights, EMA, Adam).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from charforge.errors import UserError
from charforge.models.io import load_model, save_model
from charforge.models.sr import SRConfig, SRNet, bicubic, save_upscaler
from charforge.train.checkpoint import flatten_optimizer, restore_optimizer
from charforge.train.monitor import MetricsLog, read_log
from charforge.train.schedule import warmup_cosine
from charforge.utils.io import cache_dir, save_figure, save_npy_atomic, write_json_atomic, write_text_atomic
from charforge.utils.progress import progress

STATE_KIND = "sr-train-state"
SIZES = (64, 128, 256)  # input, x2 target, x4 target
VAL_SEED = 7_000_001  # validation characters (model selection); the bench uses yet another seed
GEN_SEED = 5_000_000  # tag seeds of the generator-output pools (training); validation pools: GEN_VAL_SEED
GEN_VAL_SEED = 6_000_000
BORDER = 4  # input px at each patch edge left out of the loss (padding differs from the full image there)


@dataclass
class SRTrainOptions:
    steps: int = 12000
    batch_size: int = 16
    patch: int = 40  # input patch side, px (the loss ignores BORDER px at each edge)
    lr: float = 2e-3
    n_train: int = 4000  # characters rendered at the three sizes
    seed: int = 0
    cel_share: float = 0.4  # share of training characters in the cel style (the generators' style)
    clean_share: float = 0.25  # inputs with no degradation at all
    fade_p: float = 0.0  # of the degraded: thin dark lines faded (a GAN's faint outlines), strength in fade
    fade: tuple[float, float] = (0.3, 0.9)
    chroma_p: float = 0.0  # of the degraded: colour fringes (each channel shifted by up to chroma_shift px)
    chroma_shift: float = 0.7
    speckle_p: float = 0.0  # of the degraded: blotchy colour noise, strongest along edges (a GAN's speckle)
    speckle_sigma: tuple[float, float] = (4.0, 24.0)  # 0-255 units
    blur_p: float = 0.7  # of the degraded: Gaussian blur, sigma in blur_sigma
    blur_sigma: tuple[float, float] = (0.3, 1.3)
    resample_p: float = 0.3
    noise_p: float = 0.3
    noise_sigma: float = 8.0  # max, in 0-255 units
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (40, 95)
    x2_weight: float = 0.5
    edge_weight: float = 0.0  # L1 between the Laplacians of the x4 output and target (high frequencies)
    gan_weight: float = 0.0  # adversarial term on the x4 output (a small patch discriminator, hinge loss)
    d_lr: float = 2e-4
    d_warmup: int = 0  # first steps: the discriminator learns, the upscaler gets no adversarial gradient
    adv_ramp: int = 0  # then the adversarial weights rise linearly over this many steps
    # the unpaired branch (docs/upscale.md, session 16): crops of these generators' own outputs (names or files),
    # upscaled x4, judged by the same discriminator against render crops, tied to their input by a low-frequency
    # term; with both gen weights 0 their outputs are only measured (validation sharpness and fidelity)
    gen_models: tuple[str, ...] = ()
    gen_pool: int = 2000  # outputs per generator, drawn once (cached) with seeds from GEN_SEED
    gen_batch: int = 8  # generator crops per step
    gen_gan_weight: float = 0.0  # adversarial weight of the generator crops' x4 outputs
    gen_fidelity_weight: float = 1.0  # L1 of low-passed (area-downscaled output, input), at 64 px
    fidelity_sigma: float = 1.0  # Gaussian low-pass sigma, input px
    init_from: str | None = None  # an upscaler file (or run folder) to start from: a fine-tune
    ema: float = 0.999
    eval_every: int = 500
    checkpoint_every: int = 500
    bf16: bool = True  # only where native (charforge.core.device.use_bf16)
    threads: int | None = None
    minutes: float | None = None  # stop (checkpointed, exit 0) at the first step after this much wall time
    model: SRConfig = field(default_factory=SRConfig)

    def fingerprint(self) -> dict[str, Any]:
        """What must match for --resume (not the run length or budget)."""
        d = asdict(self)
        for k in ("steps", "minutes", "threads", "eval_every", "checkpoint_every"):
            d.pop(k)
        return json.loads(json.dumps(d))

    def validate(self) -> SRTrainOptions:
        self.model.validate(source="--set")
        checks = {
            "steps": (1, 10_000_000),
            "batch_size": (1, 1024),
            "patch": (2 * BORDER + 4, 64),
            "n_train": (8, 1_000_000),
            "eval_every": (1, 10_000_000),
            "d_warmup": (0, 10_000_000),
            "adv_ramp": (0, 10_000_000),
            "checkpoint_every": (1, 10_000_000),
        }
        for name, (lo, hi) in checks.items():
            v = getattr(self, name)
            if not (lo <= v <= hi):
                raise UserError(f"{name}={v}: must be between {lo} and {hi}", field=name)
        if self.gen_models and not (1 <= self.gen_batch <= 1024 and 16 <= self.gen_pool <= 1_000_000):
            raise UserError(
                f"gen_batch={self.gen_batch}, gen_pool={self.gen_pool}: need 1-1024 and 16-1,000,000",
                field="gen_batch",
            )
        if not (0.3 <= self.fidelity_sigma <= 8):
            raise UserError(
                f"fidelity_sigma={self.fidelity_sigma}: must be between 0.3 and 8", field="fidelity_sigma"
            )
        for name in (
            "gen_gan_weight",
            "gen_fidelity_weight",
            "cel_share",
            "clean_share",
            "fade_p",
            "chroma_p",
            "speckle_p",
            "blur_p",
            "resample_p",
            "noise_p",
            "jpeg_p",
            "x2_weight",
            "edge_weight",
            "gan_weight",
        ):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise UserError(f"{name}={v}: must be between 0 and 1", field=name)
        if not (0 < self.lr < 1):
            raise UserError(f"lr={self.lr}: must be between 0 and 1", field="lr")
        if not (0 <= self.ema < 1):
            raise UserError(f"ema={self.ema}: must be in [0, 1)", field="ema")
        return self


# ------------------------------------------------------------------------------------------------ pairs


def render_pairs(
    n: int, seed: int, cel_share: float, *, desc: str = "rendering pairs"
) -> dict[int, np.ndarray]:
    """{64: (n,64,64,3), 128: ..., 256: ...} uint8 renders of the same n characters: the first
    round(n * cel_share) in the cel style, the rest from the six-style creator (style drawn per character)."""
    from charforge.creators.builtin import BuiltinCreator
    from charforge.creators.builtin.styles import STYLES

    n_cel = int(round(n * cel_share))
    out = {s: np.empty((n, s, s, 3), np.uint8) for s in SIZES}
    chunk = 128
    with progress(total=n, desc=desc, unit="img") as bar:
        for part, (creator, lo, hi) in enumerate(
            ((BuiltinCreator(), 0, n_cel), (BuiltinCreator(styles=list(STYLES)), n_cel, n))
        ):
            for start in range(lo, hi, chunk):
                m = min(chunk, hi - start)
                batch = creator.sample(m, np.random.default_rng([seed, part, start]))
                for s in SIZES:
                    out[s][start : start + m] = creator.render(batch, s)
                bar.update(m)
    return out


def cached_pairs(n: int, seed: int, cel_share: float) -> dict[int, np.ndarray]:
    """render_pairs, kept in the cache ($CHARFORGE_CACHE/sr_pairs/<key>/) so runs and resumes share them."""
    from charforge.creators.builtin import BuiltinCreator

    probe = BuiltinCreator().render(BuiltinCreator().sample(1, np.random.default_rng(0)), 64)
    key = hashlib.sha256(json.dumps([n, seed, cel_share, SIZES]).encode() + probe.tobytes()).hexdigest()[:16]
    folder = cache_dir("sr_pairs") / key
    paths = {s: folder / f"r{s}.npy" for s in SIZES}
    if all(p.is_file() for p in paths.values()):
        try:
            return {s: np.load(p, mmap_mode="r") for s, p in paths.items()}
        except (OSError, ValueError):
            pass  # a damaged cache entry: render again
    pairs = render_pairs(n, seed, cel_share)
    folder.mkdir(parents=True, exist_ok=True)
    for s, p in paths.items():
        save_npy_atomic(p, pairs[s])
    return pairs


def load_gen_model(spec: str):
    """The generator bundle of a `--gen-model` value; a bad one is an error naming the option."""
    from charforge import sampling

    try:
        bundle = sampling.load_generator(spec, device="cpu")
    except UserError as e:
        raise UserError(f"--gen-model {spec}: {e}", field="gen_models") from None
    if bundle.image_size < 16:
        raise UserError(
            f"--gen-model {spec}: {bundle.image_size} px outputs are too small", field="gen_models"
        )
    return bundle


def generator_pool(
    spec: str, n: int, seed: int, *, desc: str = "generator outputs", bundle: Any = None
) -> np.ndarray:
    """n uint8 outputs of generator `spec` (a shipped name, file or run folder) for random tags, tag seeds
    seed, seed+1, ...; kept in the cache ($CHARFORGE_CACHE/sr_gen/<key>.npy, keyed by the weights' sha256) so
    a resumed run reads the very same pool. `bundle`: spec already loaded (load_gen_model), to load it once."""
    from charforge import sampling

    if bundle is None:
        bundle = load_gen_model(spec)
    key = hashlib.sha256(json.dumps([bundle.sha256, n, seed]).encode()).hexdigest()[:16]
    path = cache_dir("sr_gen") / f"{key}.npy"
    if path.is_file():
        try:
            arr = np.load(path)
            if arr.shape[0] == n:
                return arr
        except (OSError, ValueError):
            pass  # damaged: draw again
    s = bundle.image_size
    out = np.empty((n, s, s, 3), np.uint8)
    chunk = 200
    with progress(total=n, desc=f"{desc} ({bundle.model_id})", unit="img") as bar:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            images, _, _ = sampling.characters_for_request(
                bundle, "", m, seed + start, source="upscaler training"
            )
            out[start : start + m] = images
            bar.update(m)
    save_npy_atomic(path, out)
    return out


def generator_pools(
    opts: SRTrainOptions, *, validation: bool = False, bundles: dict[str, Any] | None = None
) -> list[np.ndarray]:
    """The training pools (opts.gen_pool each) or the validation pools (96 images in all, split evenly).
    `bundles`: --gen-model value -> its loaded generator, so each file is read once."""
    b = bundles or {}
    if validation:
        k = max(1, 96 // max(1, len(opts.gen_models)))
        return [
            generator_pool(g, k, GEN_VAL_SEED, desc="validation outputs", bundle=b.get(g))
            for g in opts.gen_models
        ]
    return [generator_pool(g, opts.gen_pool, GEN_SEED, bundle=b.get(g)) for g in opts.gen_models]


# ------------------------------------------------------------------------------------------ degradation


def degrade_image(img: np.ndarray, rng: np.random.Generator, opts: SRTrainOptions) -> np.ndarray:
    """One uint8 (H, W, 3) input through the degradation model (blur, resample, noise, JPEG)."""
    import cv2

    if rng.random() < opts.clean_share:
        return img
    x = img.astype(np.float32)
    h, w = x.shape[:2]
    if opts.fade_p > 0 and rng.random() < opts.fade_p:
        # a morphological closing (3 x 3) removes lines one or two px wide that are darker than both sides;
        # blending towards it fades the outlines the way a GAN's soft outputs draw them
        closed = cv2.morphologyEx(
            x, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REFLECT
        )
        x = x + float(rng.uniform(*opts.fade)) * (closed - x)
    if opts.chroma_p > 0 and rng.random() < opts.chroma_p:
        shifts = rng.uniform(-opts.chroma_shift, opts.chroma_shift, (3, 2))
        x = np.stack(
            [
                cv2.warpAffine(
                    np.ascontiguousarray(x[:, :, c]),
                    np.float32([[1, 0, shifts[c, 0]], [0, 1, shifts[c, 1]]]),
                    (w, h),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT,
                )
                for c in range(3)
            ],
            axis=2,
        )
    if opts.speckle_p > 0 and rng.random() < opts.speckle_p:
        # colour noise blurred to 1-2 px blobs, weighted towards edges (gradient magnitude of the image)
        gray = x.mean(axis=2)
        mag = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        weight = 0.3 + 0.7 * np.clip(mag / (np.percentile(mag, 95) + 1e-6), 0, 1)
        blob = cv2.GaussianBlur(
            rng.normal(0, 1, x.shape).astype(np.float32), (0, 0), sigmaX=float(rng.uniform(0.5, 1.0))
        )
        blob /= blob.std() + 1e-6
        x = x + float(rng.uniform(*opts.speckle_sigma)) * weight[:, :, None] * blob
    if rng.random() < opts.blur_p:
        sigma = float(rng.uniform(*opts.blur_sigma))
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    if rng.random() < opts.resample_p:
        f = float(rng.uniform(0.55, 0.95))
        sw, sh = max(4, round(w * f)), max(4, round(h * f))
        down = (cv2.INTER_AREA, cv2.INTER_LINEAR)[int(rng.integers(2))]
        up = (cv2.INTER_LINEAR, cv2.INTER_CUBIC)[int(rng.integers(2))]
        x = cv2.resize(cv2.resize(x, (sw, sh), interpolation=down), (w, h), interpolation=up)
    if rng.random() < opts.noise_p:
        x = x + rng.normal(0, rng.uniform(0.5, opts.noise_sigma), x.shape).astype(np.float32)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if rng.random() < opts.jpeg_p:
        q = int(rng.integers(opts.jpeg_quality[0], opts.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", x[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            x = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(x)


def make_batch(
    pairs: dict[int, np.ndarray], step: int, opts: SRTrainOptions
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The step's batch, a pure function of (pairs, seed, step): (B,3,P,P) inputs and {2: .., 4: ..} targets,
    floats in [0, 1]."""
    rng = np.random.default_rng([opts.seed, step])
    n = len(pairs[64])
    p = opts.patch
    xs, t2, t4 = [], [], []
    for i in rng.integers(0, n, opts.batch_size):
        lo = degrade_image(np.asarray(pairs[64][i]), rng, opts)
        y, x = (int(v) for v in rng.integers(0, 64 - p + 1, 2))
        crops = [lo[y : y + p, x : x + p], pairs[128][i][2 * y : 2 * (y + p), 2 * x : 2 * (x + p)]]
        crops.append(pairs[256][i][4 * y : 4 * (y + p), 4 * x : 4 * (x + p)])
        perm = rng.permutation(3)
        flip = rng.random() < 0.5
        crops = [c[:, ::-1, perm] if flip else c[:, :, perm] for c in crops]
        for dst, c in zip((xs, t2, t4), crops):
            dst.append(np.ascontiguousarray(c))

    def t(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float().div_(255.0)

    return t(xs), {2: t(t2), 4: t(t4)}


def make_gen_batch(pools: list[np.ndarray], step: int, opts: SRTrainOptions) -> torch.Tensor:
    """The step's generator crops (B, 3, P, P) in [0, 1]: a pure function of (pools, seed, step), drawn from
    their own random stream so the paired batch is the same with and without them."""
    rng = np.random.default_rng([opts.seed, step, 1])
    sizes = np.cumsum([0] + [len(p) for p in pools])
    p = opts.patch
    xs = []
    for j in rng.integers(0, int(sizes[-1]), opts.gen_batch):
        k = int(np.searchsorted(sizes, j, side="right") - 1)
        img = np.asarray(pools[k][j - sizes[k]])
        y, x = (int(v) for v in rng.integers(0, img.shape[0] - p + 1, 2))
        c = img[y : y + p, x : x + p]
        perm = rng.permutation(3)
        c = c[:, ::-1, perm] if rng.random() < 0.5 else c[:, :, perm]
        xs.append(np.ascontiguousarray(c))
    return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float().div_(255.0)


def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel, valid region only (radius ceil(3 sigma) lost at each edge)."""
    r = max(1, int(np.ceil(3 * sigma)))
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    g = g / g.sum()
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


# ------------------------------------------------------------------------------------------------ eval


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-image PSNR in dB of uint8 image stacks (RGB, peak 255)."""
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = d.reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def run_net(net: SRNet, images: np.ndarray, scale: int, *, bf16: bool = False, batch: int = 16) -> np.ndarray:
    """uint8 (N,H,W,3) -> uint8 (N,sH,sW,3) through `net` (no tiling: training-time evaluation)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = (
                torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float()
                / 255
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                r = net.residual(x, scale)
            y = (bicubic(x, scale) + r.float()).clamp(0, 1)
            out.append((y * 255).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def blur_inputs(images: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return np.stack(
        [cv2.GaussianBlur(im, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT) for im in images]
    )


def validation_set(n: int = 96) -> dict[int, np.ndarray]:
    """n characters (half cel, half styles) from VAL_SEED: never in a training set (training seeds are small)."""
    return render_pairs(n, VAL_SEED, 0.5, desc="rendering validation pairs")


def evaluate(net: SRNet, val: dict[Any, Any], *, bf16: bool = False) -> dict[str, float]:
    """PSNR of the net and of bicubic at x2 and x4 on clean and on blurred (sigma 0.6, GAN-like) inputs, and
    the x4 sharpness ratio."""
    from charforge.metrics.sharpness import sharpness_ratio

    row: dict[str, float] = {}
    for name, inp in (("clean", val[64]), ("blur", blur_inputs(val[64], 0.6))):
        for s in (2, 4):
            if f"x{s}" not in net.tails:
                continue
            target = val[64 * s]
            ours = run_net(net, inp, s, bf16=bf16)
            x = torch.from_numpy(np.ascontiguousarray(inp)).permute(0, 3, 1, 2).float() / 255
            bic = (bicubic(x, s).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
            row[f"psnr_x{s}_{name}"] = psnr(ours, target)
            row[f"bicubic_x{s}_{name}"] = psnr(bic, target)
            if (
                s == 4
            ):  # sharpness ratio (variance of the Laplacian against the 256 px renders): PSNR favours blur
                row[f"sharp_x4_{name}"] = sharpness_ratio(ours, target)
    gen = [g for g in val.get("gen", []) if g.shape[1] == 64]
    if gen and "x4" in net.tails:
        g = np.concatenate(gen)
        ours = run_net(net, g, 4, bf16=bf16)
        # generator outputs have no 256 px truth: sharpness against the validation renders, and fidelity to
        # the input (the output area-downscaled back to 64 px)
        row["sharp_gen_x4"] = sharpness_ratio(ours, val[256])
        down = ours.reshape(len(g), 64, 4, 64, 4, 3).mean((2, 4)).round().astype(np.uint8)
        row["gen_lr_psnr"] = psnr(down, g)
    return row


def _save_sheet(net: SRNet, inp: np.ndarray, truth: np.ndarray | None, path: Path, bf16: bool) -> None:
    """One row per input: the 64 px input (nearest), bicubic, ours[, the 256 px truth]; written atomically."""
    from PIL import Image

    from charforge.core.images import image_grid

    x = torch.from_numpy(np.ascontiguousarray(inp)).permute(0, 3, 1, 2).float() / 255
    bic = (bicubic(x, 4).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    near = np.stack([np.asarray(Image.fromarray(im).resize((256, 256), Image.NEAREST)) for im in inp])
    cols = [near, bic, run_net(net, inp, 4, bf16=bf16)] + ([truth] if truth is not None else [])
    cells = np.stack([c for row in zip(*cols) for c in row])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(image_grid(cells, len(cols))).save(tmp)
    tmp.replace(path)


def sample_sheet(net: SRNet, val: dict[Any, Any], path: Path, *, k: int = 4, bf16: bool = False) -> None:
    """Rows: k validation characters; columns: 64 px input (nearest), bicubic, ours, the 256 px render. With
    generator outputs in `val`, also gen_<name>: k of them without a truth column."""
    idx = np.linspace(0, len(val[64]) - 1, k).round().astype(int)
    _save_sheet(net, val[64][idx], val[256][idx], path, bf16)
    gen = [g for g in val.get("gen", []) if g.shape[1] == 64]
    if gen:
        g = np.concatenate([p[: max(1, k // len(gen))] for p in gen])[:k]
        _save_sheet(net, g, None, path.with_name(f"gen_{path.name}"), bf16)


def plot_curves(log_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path) if log_path.exists() else []
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    pts = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    if pts:
        a.plot(*zip(*pts), lw=1)
    a.set_yscale("log")
    a.set_title("training loss (L1, x4 + x2)")
    a.set_xlabel("step")
    for key, style in (("psnr_x4_clean", "-"), ("psnr_x4_blur", "--"), ("psnr_x2_clean", ":")):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            b.plot(*zip(*pts), style, label=f"ours {key[5:]}")
            base = [r[key.replace("psnr", "bicubic")] for r in rows if key in r]
            b.axhline(base[-1], color="grey", ls=style, lw=0.8, label=f"bicubic {key[5:]}")
    b.set_title("validation PSNR (dB)")
    b.set_xlabel("step")
    if b.lines:
        b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ loop


@dataclass
class SRTrainResult:
    path: Path
    step: int
    finished: bool
    metrics: dict[str, float]


def _lr_at(step: int, opts: SRTrainOptions) -> float:
    return warmup_cosine(step, opts.steps, opts.lr, max_warmup=200, floor=0.02)


class PatchD(torch.nn.Module):
    """A small patch discriminator for the adversarial fine-tune: 4 strided convolutions, spectral norm,
    one logit per 16 x 16 output patch."""

    def __init__(self, width: int = 32):
        super().__init__()
        sn = torch.nn.utils.spectral_norm
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        layers: list[torch.nn.Module] = []
        for a, b in zip(chans, chans[1:]):
            layers += [sn(torch.nn.Conv2d(a, b, 4, stride=2, padding=1)), torch.nn.LeakyReLU(0.2)]
        layers.append(sn(torch.nn.Conv2d(chans[-1], 1, 3, padding=1)))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """The 4-neighbour Laplacian of each channel (valid region: the output is 2 px smaller)."""
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype)
    return F.conv2d(x, k.expand(x.shape[1], 1, 3, 3), groups=x.shape[1])


def adv_scale(step: int, opts: SRTrainOptions) -> float:
    """The share of the adversarial weights in force at `step` (0 during the discriminator's warm-up)."""
    if step < opts.d_warmup:
        return 0.0
    return min(1.0, (step - opts.d_warmup + 1) / max(1, opts.adv_ramp))


def _train_step(
    net,
    ema,
    opt,
    batch,
    lr: float,
    opts: SRTrainOptions,
    bf16: bool,
    disc=None,
    gen: torch.Tensor | None = None,
    adv: float = 1.0,
) -> dict[str, float]:
    """One Adam step on L1 (x4, plus x2 at x2_weight) away from the patch borders, plus the optional edge and
    adversarial terms on x4, plus (with `gen`, generator crops) their adversarial and low-frequency fidelity
    terms; then the discriminator's step (when there is one) and the EMA update."""
    x, targets = batch
    for g in opt.param_groups:
        g["lr"] = lr
    inp = x if gen is None else torch.cat([x, gen])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        res = net.forward_all(inp.contiguous(memory_format=torch.channels_last))
    loss = torch.zeros(())
    out: dict[str, float] = {}
    n = len(x)
    for s, r in res.items():
        pred, cut = bicubic(x, s) + r[:n].float(), s * BORDER
        pred, target = pred[..., cut:-cut, cut:-cut], targets[s][..., cut:-cut, cut:-cut]
        w = 1.0 if s == 4 else opts.x2_weight
        loss = loss + w * F.l1_loss(pred, target)
        if s == 4:
            x4, t4 = pred, target
    out["l1"] = float(loss.detach())
    if opts.edge_weight > 0:
        edge = F.l1_loss(laplacian(x4), laplacian(t4))
        loss = loss + opts.edge_weight * edge
        out["edge"] = float(edge.detach())
    g4 = None
    if gen is not None:
        cut = 4 * BORDER
        g4 = (bicubic(gen, 4) + res[4][n:].float())[..., cut:-cut, cut:-cut]
        if opts.gen_fidelity_weight > 0:
            down = F.avg_pool2d(g4, 4)
            ref = gen[..., BORDER:-BORDER, BORDER:-BORDER]
            fid = F.l1_loss(
                gaussian_lowpass(down, opts.fidelity_sigma), gaussian_lowpass(ref, opts.fidelity_sigma)
            )
            loss = loss + opts.gen_fidelity_weight * fid
            out["gen_fidelity"] = float(fid.detach())
    if disc is not None:
        d, d_opt = disc
        d.requires_grad_(False)
        if opts.gan_weight > 0 and adv > 0:
            a = -d(x4).mean()  # hinge loss, generator side
            loss = loss + adv * opts.gan_weight * a
            out["adv"] = float(a.detach())
        if g4 is not None and opts.gen_gan_weight > 0 and adv > 0:
            gadv = -d(g4).mean()
            loss = loss + adv * opts.gen_gan_weight * gadv
            out["gen_adv"] = float(gadv.detach())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if disc is not None:
        d.requires_grad_(True)
        fakes = [x4.detach()] if opts.gan_weight > 0 else []
        if g4 is not None and opts.gen_gan_weight > 0:
            fakes.append(g4.detach())
        fake = torch.cat(fakes) if fakes else x4.detach()
        d_loss = F.relu(1 - d(t4)).mean() + F.relu(1 + d(fake)).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        out["d_loss"] = float(d_loss.detach())
    with torch.no_grad():
        for pe, pn in zip(ema.parameters(), net.parameters()):
            pe.lerp_(pn.detach(), 1 - opts.ema)
    out["loss"] = float(loss.detach())
    return out


def _init_from(net: SRNet, opts: SRTrainOptions) -> str:
    """Start `net` from the upscaler `opts.init_from` (same architecture); returns that file's sha256."""
    from charforge.models.io import file_sha256
    from charforge.models.sr import load_upscaler_file
    from charforge.sr import resolve_path

    path = resolve_path(opts.init_from)
    src, _ = load_upscaler_file(path)
    if src.cfg != opts.model:
        raise UserError(
            f"--init-from {path}: its network ({src.cfg.to_dict()}) differs from this run's ({opts.model.to_dict()}); "
            "pass the same --channels/--blocks/--up-channels",
            field="init_from",
        )
    net.load_state_dict(src.state_dict())
    return file_sha256(path)


def _state_path(out: Path) -> Path:
    return out / "checkpoints" / "state.safetensors"


def _save_state(out: Path, modules: dict, optims: dict, step: int, fp: dict) -> None:
    """modules {"net", "ema"[, "d"]} and optimisers {"opt"[, "d_opt"]} into one safetensors state file."""
    tensors: dict[str, torch.Tensor] = {}
    for name, m in modules.items():
        tensors |= {f"{name}.{k}": v for k, v in m.state_dict().items()}
    metas = {}
    for name, o in optims.items():
        t, metas[name] = flatten_optimizer(o, name)
        tensors |= t
    save_model(
        _state_path(out), tensors, kind=STATE_KIND, config=fp, extra={"step": step, "optimizers": metas}
    )


def _load_state(out: Path, modules: dict, optims: dict, fp: dict) -> int:
    path = _state_path(out)
    if not path.is_file():
        raise UserError(f"{out}: no checkpoint to resume from ({path} is missing); start without --resume")
    tensors, meta = load_model(path, kind=STATE_KIND)
    saved = meta.get("charforge_config") or {}
    base = SRTrainOptions().fingerprint()  # options added since the run started take their defaults
    theirs = {k: saved.get(k, base.get(k)) for k in set(fp) | set(saved)}
    diff = sorted(k for k in theirs if fp.get(k) != theirs[k])
    if diff:
        raise UserError(
            f"{out}: the run was started with other settings ({', '.join(diff)}); rerun with the original "
            "settings, or use a new --out folder"
        )
    for name, m in modules.items():
        head = f"{name}."
        m.load_state_dict({k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)})
    metas = meta.get("optimizers") or {"opt": meta.get("optimizer")}  # files before the discriminator: one
    for name, o in optims.items():
        restore_optimizer(o, tensors, metas[name], name)
    return int(meta["step"])


def _model_card(out: Path, opts: SRTrainOptions, step: int, wall: float, metrics: dict, command: str) -> None:
    from charforge.provenance.modelcard import card_header

    m = metrics
    header = card_header(
        license="apache-2.0",
        tags=("charforge", "super-resolution", "image-to-image", "anime"),
        extra={"pipeline_tag": "image-to-image"},
    )
    lines = [
        header.rstrip("\n"),
        "# Upscaler (charforge super-resolution)",
        "",
        f"- **What:** x{' and x'.join(str(s) for s in opts.model.scales)} super-resolution for anime portraits "
        f"({opts.model.channels} channels, {opts.model.blocks} residual blocks at the input resolution; "
        "a residual over bicubic).",
        f"- **Command:** `{command}`",
        f"- **Data:** {opts.n_train} characters of the built-in creator (seed {opts.seed}; {opts.cel_share:.0%} cel, "
        "the rest the six-style creator), each rendered at 64, 128 and 256 px: exact pairs, no outside data. "
        "Licence of the data: the creator's renders (Apache-2.0, this project).",
        f"- **Degradations of the 64 px input:** clean {opts.clean_share:.0%}; otherwise "
        + (
            f"faded outlines p={opts.fade_p} (strength {opts.fade[0]}-{opts.fade[1]}), "
            if opts.fade_p
            else ""
        )
        + (f"colour fringes p={opts.chroma_p} (<= {opts.chroma_shift} px), " if opts.chroma_p else "")
        + (
            f"edge speckle p={opts.speckle_p} (sigma {opts.speckle_sigma[0]}-{opts.speckle_sigma[1]}/255), "
            if opts.speckle_p
            else ""
        )
        + f"blur p={opts.blur_p} "
        f"(sigma {opts.blur_sigma[0]}-{opts.blur_sigma[1]}), resample p={opts.resample_p}, noise p={opts.noise_p} "
        f"(sigma <= {opts.noise_sigma}/255), JPEG p={opts.jpeg_p} (q {opts.jpeg_quality[0]}-{opts.jpeg_quality[1]}); "
        "colour channels permuted, flips.",
        f"- **Loss:** L1 (x4 + {opts.x2_weight} x2)"
        + (f" + {opts.edge_weight} L1 of the Laplacians (x4)" if opts.edge_weight else "")
        + (
            f" + {opts.gan_weight} hinge adversarial term (patch discriminator, x4)"
            if opts.gan_weight
            else ""
        )
        + (
            f"; generator outputs measured, not trained on: {', '.join(f'`{g}`' for g in opts.gen_models)}"
            if opts.gen_models and not (opts.gen_gan_weight > 0 or opts.gen_fidelity_weight > 0)
            else ""
        )
        + (
            f"; unpaired branch: {opts.gen_batch} crops per step of {opts.gen_pool} outputs of each of "
            f"{', '.join(f'`{g}`' for g in opts.gen_models)}, {opts.gen_gan_weight} adversarial + "
            f"{opts.gen_fidelity_weight} L1 of the low-passed (sigma {opts.fidelity_sigma} px) downscaled output "
            "against the low-passed input"
            if opts.gen_models and (opts.gen_gan_weight > 0 or opts.gen_fidelity_weight > 0)
            else ""
        )
        + (
            f"; the discriminator learns alone for {opts.d_warmup} steps, then the adversarial weights rise over "
            f"{opts.adv_ramp}"
            if opts.d_warmup or opts.adv_ramp
            else ""
        )
        + (f"; fine-tuned from `{opts.init_from}`" if opts.init_from else "")
        + ".",
        f"- **Steps:** {step} of {opts.steps} (batch {opts.batch_size} patches of {opts.patch} px), "
        f"wall time {wall / 60:.1f} min.",
        f"- **Validation** (96 characters from seed {VAL_SEED}, half cel, half styles; PSNR dB, ours vs bicubic):",
    ]
    for key in sorted(k for k in m if k.startswith("psnr_")):
        lines.append(f"  - {key[5:]}: {m[key]:.2f} vs {m[key.replace('psnr', 'bicubic')]:.2f}")
    if "gen_lr_psnr" in m:
        lines.append(
            f"  - generator outputs ({', '.join(opts.gen_models)}; seed {GEN_VAL_SEED}): the x4 output "
            f"area-downscaled back against the input {m['gen_lr_psnr']:.2f} dB"
        )
    for key in sorted(k for k in m if k.startswith("sharp_")):
        lines.append(
            f"  - sharpness ratio {key[6:]} (Laplacian variance / the 256 px render's): {m[key]:.2f}"
        )
    write_text_atomic(out / "MODEL_CARD.md", "\n".join(lines) + "\n")


def train_sr(
    out: str | Path, opts: SRTrainOptions, *, resume: bool = False, command: str = ""
) -> SRTrainResult:
    """Train (or resume) an upscaler into `out`: upscaler.safetensors (EMA weights), upscaler-best.safetensors
    (best validation PSNR x4 on blurred inputs), checkpoints/state.safetensors, log.jsonl, curves.png,
    samples/, MODEL_CARD.md. Returns when `steps` are done or `minutes` have passed (then resumable)."""
    from charforge.core.device import use_bf16

    opts.validate()
    out = Path(out)
    fp = opts.fingerprint()
    if not resume and _state_path(out).is_file():
        raise UserError(
            f"{out}: holds a run already; add --resume to continue it, or choose another --out folder"
        )
    if opts.threads:
        torch.set_num_threads(opts.threads)
    bf16 = use_bf16("cpu", opts.bf16, what="upscaler training")
    torch.manual_seed(opts.seed)
    net = SRNet(opts.model).to(memory_format=torch.channels_last)
    if opts.init_from:
        fp["init_sha256"] = _init_from(net, opts)
    trains_on_gen = opts.gen_gan_weight > 0 or opts.gen_fidelity_weight > 0
    bundles = {g: load_gen_model(g) for g in opts.gen_models}  # each generator file is read once
    pools = generator_pools(opts, bundles=bundles) if opts.gen_models and trains_on_gen else []
    if opts.gen_models:
        fp["gen_sha256"] = [bundles[g].sha256 for g in opts.gen_models]
        too_small = [g for g, p in zip(opts.gen_models, pools) if p.shape[1] < opts.patch]
        if too_small:
            raise UserError(f"--gen-model {too_small[0]}: outputs smaller than --patch {opts.patch}")
    ema = SRNet(opts.model)
    ema.load_state_dict(net.state_dict())
    ema.eval().requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=opts.lr, betas=(0.9, 0.99))
    modules, optims, disc = {"net": net, "ema": ema}, {"opt": opt}, None
    if opts.gan_weight > 0 or (opts.gen_models and opts.gen_gan_weight > 0):
        d = PatchD()
        d_opt = torch.optim.Adam(d.parameters(), lr=opts.d_lr, betas=(0.5, 0.99))
        modules["d"], optims["d_opt"], disc = d, d_opt, (d, d_opt)
    step = _load_state(out, modules, optims, fp) if resume else 0
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", {"options": fp, "steps": opts.steps, "command": command})
    log = MetricsLog(out)
    log.truncate_after(step)
    pairs = cached_pairs(opts.n_train, opts.seed, opts.cel_share)
    val = validation_set()
    if opts.gen_models:
        val["gen"] = generator_pools(opts, validation=True, bundles=bundles)
    start = time.monotonic()
    wall0 = float(json.loads((out / "wall.json").read_text())["s"]) if (out / "wall.json").is_file() else 0.0
    best = max(
        (r.get("psnr_x4_blur", -1.0) for r in (read_log(log.path) if log.path.exists() else [])), default=-1.0
    )
    metrics: dict[str, float] = {}

    def save(name: str) -> None:
        save_upscaler(out / name, ema, model_id=f"{out.name}@{step}", provenance={"step": step, **metrics})

    def checkpoint() -> None:
        _save_state(out, modules, optims, step, fp)
        save("upscaler.safetensors")
        write_json_atomic(out / "wall.json", {"s": wall0 + time.monotonic() - start})

    with progress(total=opts.steps, initial=step, desc="upscaler", unit="step") as bar:
        while step < opts.steps:
            if opts.minutes is not None and time.monotonic() - start > opts.minutes * 60:
                break
            gen = make_gen_batch(pools, step, opts) if pools else None
            row = _train_step(
                net,
                ema,
                opt,
                make_batch(pairs, step, opts),
                _lr_at(step, opts),
                opts,
                bf16,
                disc,
                gen,
                adv_scale(step, opts),
            )
            step += 1
            bar.update(1)
            if step % 50 == 0:
                log.write({"step": step, **row, "lr": _lr_at(step - 1, opts)})
            if step % opts.eval_every == 0 or step == opts.steps:
                metrics = evaluate(ema, val, bf16=bf16)
                log.write({"step": step, **metrics})
                bar.set_postfix(x4=f"{metrics.get('psnr_x4_clean', 0):.2f}dB")
                sample_sheet(ema, val, out / "samples" / f"step_{step:07d}.png", bf16=bf16)
                plot_curves(log.path, out / "curves.png")
                if metrics.get("psnr_x4_blur", -1.0) > best:
                    best = metrics["psnr_x4_blur"]
                    save("upscaler-best.safetensors")
            if step % opts.checkpoint_every == 0 or step == opts.steps:
                checkpoint()
    finished = step >= opts.steps
    if not finished:
        checkpoint()
    wall = wall0 + time.monotonic() - start
    write_json_atomic(out / "wall.json", {"s": wall})
    if not metrics:
        metrics = evaluate(ema, val, bf16=bf16)
        log.write({"step": step, **metrics})
    plot_curves(log.path, out / "curves.png")
    _model_card(out, opts, step, wall, metrics, command)
    log.close()
    return SRTrainResult(out / "upscaler.safetensors", step, finished, metrics)
