"""Synthetic degradations of clean images, so training and tests need no download.

The clean images are scikit-image's bundled sample images (they load offline; reference §7) or a folder of
your own (`image_dir`). Each sample takes clean image `index % len(images)`, crops it (patch_size), degrades
it with a degradation drawn from the rng, then flips/rotates the pair:

* gaussian_noise         lq = clip(gt + N(0, sigma^2)), sigma ~ U[sigma_min, sigma_max] (0-255 units),
                         independent per pixel and channel
* poisson_gaussian_noise lq = clip(Poisson(gt * peak) / peak + N(0, read_sigma^2)),
                         peak ~ U[peak_min, peak_max] photons for white, read_sigma ~ U[read_sigma_min,
                         read_sigma_max] (0-255 units): signal-dependent shot noise plus read noise
* motion_blur            lq = gt * k, k a random camera-shake kernel of odd size in
                         [kernel_size_min, kernel_size_max]: a straight stroke, or (probability
                         curved_prob) a smooth random-walk trajectory; anti-aliased, normalised to sum 1.
                         With patch_size the crop is blurred with its surrounding pixels, so crop borders
                         show real blur, not padding
* rain                   lq = clip(gt + streaks): 1-2 layers of streaks (shared direction, angle from
                         vertical ~ U[-rain_angle_max, rain_angle_max] degrees), each with seed density
                         ~ U[rain_density_min, rain_density_max] (fraction of pixels), length
                         ~ U[rain_length_min, rain_length_max] px and brightness ~ U[rain_intensity_min,
                         rain_intensity_max]

Determinism: `ds[k]` uses `np.random.default_rng([seed, k])`, so sample k of a dataset with seed s never
changes; `ds.sample(k, rng)` (training) draws everything from `rng`.
"""
from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ..errors import ConfigError, DatasetError, ImageError
from ..paths import atomic_target
from ..registry import DATASETS
from .base import RestorationDataset
from .degradations import DEGRADATIONS
from .image_bound import read_dataset_image
from .image_io import is_image_file, read_image, write_image
from .transforms import paired_random_augment


# scikit-image sample images bundled in the wheel (no download; pooch is not needed). Gray ones become RGB.
SKIMAGE_OFFLINE = ("astronaut", "brick", "camera", "cat", "cell", "chelsea", "clock", "coffee", "coins",
                   "colorwheel", "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo",
                   "microaneurysms", "moon", "page", "retina", "rocket", "text")
DEFAULT_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "camera")
MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE  # 16.8 M pixels (0.2 GB per float32 RGB copy): the largest sample made
# Photographs that ship as plain files with ppir's dependencies but have no scikit-image loader of their own:
# name -> (package, path inside that package's data folder). grace_hopper comes with matplotlib (visualdl's
# dependency); the motorcycle pair is one scene seen from two viewpoints (a stereo pair).
OFFLINE_FILES = {
    "motorcycle_left": ("skimage", "motorcycle_left.png"),
    "motorcycle_right": ("skimage", "motorcycle_right.png"),
    "grace_hopper": ("matplotlib", "sample_data/grace_hopper.jpg"),
}
OFFLINE_IMAGES = SKIMAGE_OFFLINE + tuple(OFFLINE_FILES)


def _offline_file(name: str) -> str:
    package, rel = OFFLINE_FILES[name]
    if package == "skimage":
        import skimage.data
        return os.path.join(skimage.data.data_dir, rel)
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(f"SyntheticDataset: sample {name!r} ships with matplotlib, which is not installed "
                          "(pip install matplotlib)") from None
    return os.path.join(matplotlib.get_data_path(), rel)


def load_skimage_image(name: str) -> np.ndarray:
    """A bundled sample image (scikit-image's, or one of OFFLINE_FILES) as HxWx3 RGB float32 in [0, 1]."""
    if name not in OFFLINE_IMAGES:
        raise ConfigError(f"SyntheticDataset: unknown or not-offline scikit-image sample {name!r}; "
                          f"choose from: {', '.join(OFFLINE_IMAGES)}")
    if name in OFFLINE_FILES:
        img = read_image(_offline_file(name))
        return np.ascontiguousarray(img[..., :3], dtype=np.float32)
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    if img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img, dtype=np.float32) / 255.0
    return np.clip(img.astype(np.float32), 0.0, 1.0)


def fit_to_size(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale to cover height x width (aspect kept), then centre-crop to exactly that size."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    top, left = (nh - height) // 2, (nw - width) // 2
    return np.clip(img[top:top + height, left:left + width], 0.0, 1.0)


# --------------------------------------------------------------------------------------------- degradations
def _splat(kernel: np.ndarray, xs: np.ndarray, ys: np.ndarray, weights=None) -> None:
    """Add points at sub-pixel positions (x, y) to `kernel` with bilinear weights (anti-aliasing)."""
    if weights is None:
        weights = np.ones_like(xs)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    h, w = kernel.shape
    for dx, dy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        np.add.at(kernel, (yi[ok], xi[ok]), (wt * weights)[ok])


def motion_blur_kernel(rng: np.random.Generator, size: int, curved_prob: float = 0.5) -> np.ndarray:
    """A random camera-shake kernel, size x size (odd), float32, sum 1.

    Straight: a stroke through the centre at a random angle, length 50-100% of the kernel. Curved: a random
    walk whose heading drifts smoothly (random turn rate plus jitter), rescaled to fit the kernel.
    """
    size = int(size) | 1
    c = (size - 1) / 2.0
    n = 8 * size
    if rng.random() < curved_prob:
        heading = rng.uniform(0, 2 * math.pi)
        turn = rng.normal(0.0, 3.0 / n)                        # steady curvature
        jitter = rng.normal(0.0, 0.08, n).cumsum() * 0.5       # wandering direction
        angles = heading + turn * np.arange(n) + jitter
        pts = np.stack([np.cos(angles), np.sin(angles)], 1).cumsum(0)
        pts -= (pts.max(0) + pts.min(0)) / 2                    # centre the bounding box
        extent = np.abs(pts).max()
        target = rng.uniform(0.5, 1.0) * c
        pts *= target / max(extent, 1e-6)
    else:
        angle = rng.uniform(0, math.pi)
        half = rng.uniform(0.5, 1.0) * c
        t = np.linspace(-half, half, n)
        pts = np.stack([t * math.cos(angle), t * math.sin(angle)], 1)
    kernel = np.zeros((size, size), np.float64)
    _splat(kernel, pts[:, 0] + c, pts[:, 1] + c)
    return (kernel / kernel.sum()).astype(np.float32)


def add_gaussian_noise(img, rng, sigma_min, sigma_max):
    sigma = rng.uniform(sigma_min, sigma_max) / 255.0
    return np.clip(img + sigma * rng.standard_normal(img.shape, dtype=np.float32), 0.0, 1.0)


def add_poisson_gaussian_noise(img, rng, peak_min, peak_max, read_sigma_min, read_sigma_max):
    peak = rng.uniform(peak_min, peak_max)
    read = rng.uniform(read_sigma_min, read_sigma_max) / 255.0
    shot = rng.poisson(np.clip(img, 0, 1).astype(np.float64) * peak).astype(np.float32) / np.float32(peak)
    return np.clip(shot + read * rng.standard_normal(img.shape, dtype=np.float32), 0.0, 1.0)


def is_gray(img: np.ndarray) -> bool:
    """True when every pixel has equal channels (a gray image stored as RGB)."""
    return img.ndim == 3 and img.shape[2] == 3 and bool(np.array_equal(img[..., 0], img[..., 1])
                                                         and np.array_equal(img[..., 0], img[..., 2]))


def apply_kernel(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with `kernel` (true convolution; reflected borders)."""
    return cv2.filter2D(img, -1, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT_101)


def rain_layer(rng, shape, density, length, angle_deg, intensity) -> np.ndarray:
    """A HxW map of bright streaks: sparse random seeds smeared along a line of `length` px at `angle_deg`
    from vertical, softened by a slight blur, scaled to `intensity` (peak brightness added)."""
    h, w = shape
    seeds = (rng.random((h, w)) < density).astype(np.float32) * rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    size = int(length) | 1
    c = (size - 1) / 2.0
    t = np.linspace(-c, c, 4 * size)
    a = math.radians(angle_deg)
    kernel = np.zeros((size, size), np.float64)
    _splat(kernel, c + t * math.sin(a), c + t * math.cos(a))
    kernel /= kernel.sum() / size  # each seed spreads into a streak of its own brightness
    streaks = cv2.filter2D(seeds, -1, kernel.astype(np.float32), borderType=cv2.BORDER_CONSTANT)
    streaks = cv2.GaussianBlur(streaks, (3, 3), rng.uniform(0.3, 0.8))
    return np.clip(streaks, 0.0, 1.0) * np.float32(intensity)


@DATASETS.register
class SyntheticDataset(RestorationDataset):
    """Clean images with a synthetic degradation (see the module docstring for each kind and parameter).

    images: scikit-image sample names (empty: astronaut, chelsea, coffee, rocket, hubble_deep_field,
    immunohistochemistry, camera); image_dir: a folder of clean images used instead; size: [H, W] to
    scale-and-centre-crop every clean image to first (empty: native sizes); num_samples: length (0: one per
    clean image); seed: picks the degradations `ds[k]` gets. patch_size, use_flip, use_rot, skip_bad: as in
    every dataset. gray_noise: a gray clean image (R = G = B) gets one noise field for all three channels, as
    a gray photograph would (default off: the recorded demo pretraining runs drew per-channel noise);
    max_side: shrink (aspect kept) every clean image whose longer side exceeds it (0: native sizes).
    Parameters in pixel-value units use the 0-255 scale.
    """

    def __init__(self, degradation: str = "gaussian_noise", images: tuple = (), image_dir: str = "",
                 num_samples: int = 0, seed: int = 0, size: tuple = (),
                 sigma_min: float = 5.0, sigma_max: float = 50.0,
                 peak_min: float = 10.0, peak_max: float = 100.0,
                 read_sigma_min: float = 1.0, read_sigma_max: float = 10.0,
                 kernel_size_min: int = 7, kernel_size_max: int = 21, curved_prob: float = 0.5,
                 rain_density_min: float = 0.001, rain_density_max: float = 0.006,
                 rain_length_min: int = 10, rain_length_max: int = 40, rain_angle_max: float = 30.0,
                 rain_intensity_min: float = 0.25, rain_intensity_max: float = 0.7,
                 gray_noise: bool = False, max_side: int = 0,
                 patch_size: int = 0, use_flip: bool = False, use_rot: bool = False, skip_bad: bool = False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        what = "SyntheticDataset"
        if degradation not in DEGRADATIONS:
            raise ConfigError(f"{what}: degradation must be one of {', '.join(DEGRADATIONS)}, got {degradation!r}")
        self.degradation = degradation
        if int(seed) < 0:
            raise ConfigError(f"{what}: seed must be >= 0, got {seed}")
        self.seed = int(seed)
        if isinstance(images, str):
            images = [s.strip() for s in images.split(",") if s.strip()]
        size = tuple(int(s) for s in (size or ()))
        if size and (len(size) != 2 or min(size) < 1):
            raise ConfigError(f"{what}: size must be [height, width] with positive values, got {list(size)}")
        if size and size[0] * size[1] > MAX_PIXELS:  # each image is held as float32 RGB, in several copies
            raise ConfigError(f"{what}: size {size[0]}x{size[1]} is {size[0] * size[1]:,} pixels per image, more "
                              f"than the {MAX_PIXELS:,} ({MAX_SIDE}x{MAX_SIDE}) a synthetic sample may have")
        self.size = size
        if int(max_side) < 0:
            raise ConfigError(f"{what}: max_side must be >= 0 (0 = native size), got {max_side}")
        self.max_side = int(max_side)
        self.gray_noise = bool(gray_noise)
        q = dict(sigma_min=float(sigma_min), sigma_max=float(sigma_max), peak_min=float(peak_min),
                 peak_max=float(peak_max), read_sigma_min=float(read_sigma_min),
                 read_sigma_max=float(read_sigma_max), kernel_size_min=int(kernel_size_min),
                 kernel_size_max=int(kernel_size_max), curved_prob=float(curved_prob),
                 rain_density_min=float(rain_density_min), rain_density_max=float(rain_density_max),
                 rain_length_min=int(rain_length_min), rain_length_max=int(rain_length_max),
                 rain_angle_max=float(rain_angle_max), rain_intensity_min=float(rain_intensity_min),
                 rain_intensity_max=float(rain_intensity_max))
        for lo, hi in (("sigma_min", "sigma_max"), ("peak_min", "peak_max"), ("read_sigma_min", "read_sigma_max"),
                       ("kernel_size_min", "kernel_size_max"), ("rain_density_min", "rain_density_max"),
                       ("rain_length_min", "rain_length_max"), ("rain_intensity_min", "rain_intensity_max")):
            if not 0 <= q[lo] <= q[hi]:
                raise ConfigError(f"{what}: need 0 <= {lo} <= {hi}, got {q[lo]} and {q[hi]}")
        if q["peak_min"] <= 0:
            raise ConfigError(f"{what}: peak_min must be > 0, got {peak_min}")
        if q["kernel_size_min"] < 1 or q["rain_length_min"] < 1:
            raise ConfigError(f"{what}: kernel_size_min and rain_length_min must be >= 1")
        if not 0 <= q["curved_prob"] <= 1:
            raise ConfigError(f"{what}: curved_prob must be in [0, 1], got {curved_prob}")
        self.params = q
        self.image_dir = image_dir
        self._cache: dict[int, np.ndarray] = {}
        if image_dir:
            layout = "a folder of clean images (png, jpg, ...)"
            if not os.path.isdir(image_dir):
                raise DatasetError(f"{what}: {image_dir}: no such folder; image_dir must be {layout}")
            files = sorted(f for f in os.listdir(image_dir)
                           if is_image_file(f) and os.path.isfile(os.path.join(image_dir, f)))
            if not files:
                raise DatasetError(f"{what}: {image_dir}: no image files in this folder; image_dir must be {layout}")
            self.sources = [(os.path.splitext(f)[0], os.path.join(image_dir, f)) for f in files]
        else:
            names = list(images) or list(DEFAULT_IMAGES)
            for n in names:
                if n not in OFFLINE_IMAGES:
                    raise ConfigError(f"{what}: unknown or not-offline scikit-image sample {n!r}; "
                                      f"choose from: {', '.join(OFFLINE_IMAGES)}")
            self.sources = [(n, None) for n in names]
            for i, (n, _) in enumerate(self.sources):  # small, bundled: load once
                self._cache[i] = self._prepare(load_skimage_image(n))
        if int(num_samples) < 0:
            raise ConfigError(f"{what}: num_samples must be >= 0 (0 = one per clean image), got {num_samples}")
        self.num_samples = int(num_samples) or len(self.sources)

    # ------------------------------------------------------------------ the contract
    def __len__(self) -> int:
        return self.num_samples

    def eval_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, index])

    def _prepare(self, img: np.ndarray) -> np.ndarray:
        if self.size:
            return fit_to_size(img, *self.size)
        h, w = img.shape[:2]
        if self.max_side and max(h, w) > self.max_side:  # shrink, aspect kept
            scale = self.max_side / max(h, w)
            img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        return img

    def clean_image(self, index: int) -> tuple[np.ndarray, str]:
        """The clean source image sample `index` uses, and its name."""
        i = index % len(self.sources)
        name, path = self.sources[i]
        if i in self._cache:
            return self._cache[i], name
        return self._prepare(read_dataset_image(path)), name

    def describe(self, index: int) -> str:
        name, path = self.sources[index % len(self.sources)]
        return path or f"scikit-image sample {name!r}"

    def load_pair(self, index: int):
        """The whole clean image and its degradation for this dataset's `ds[index]` (no crop, no flip)."""
        gt, name = self.clean_image(index)
        return self.degrade(gt, self.eval_rng(index)), gt, f"{name}_{index:05d}"

    def blur_kernel(self, index: int) -> np.ndarray:
        """The motion-blur kernel of `load_pair(index)` (and `ds[index]` without patch_size): the same draws
        replayed, for the oracle deconvolution of ppir.baselines (a kernel no real user has)."""
        if self.degradation != "motion_blur":
            raise ConfigError(f"SyntheticDataset: blur_kernel needs degradation motion_blur, not {self.degradation}")
        if self.patch_size:
            raise ConfigError("SyntheticDataset: blur_kernel is for whole images (no patch_size)")
        return self._draw_kernel(self.eval_rng(index))

    def _draw_kernel(self, rng: np.random.Generator) -> np.ndarray:
        q = self.params
        size = 2 * int(rng.integers(q["kernel_size_min"] // 2, q["kernel_size_max"] // 2 + 1)) + 1
        return motion_blur_kernel(rng, size, q["curved_prob"])

    def margin(self) -> int:
        """Pixels of context a crop needs around it for the degradation to be exact (motion blur)."""
        return self.params["kernel_size_max"] // 2 if self.degradation == "motion_blur" else 0

    def make_sample(self, index: int, rng: np.random.Generator):
        gt, name = self.clean_image(index)
        name = f"{name}_{index:05d}"
        p = self.patch_size
        top = left = 0
        mh = mw = 0
        if p:
            h, w = gt.shape[:2]
            if h < p or w < p:
                raise ImageError(f"{self.describe(index)}: the clean image is {w}x{h} (WxH)"
                                 f"{' after size ' + str(list(self.size)) if self.size else ''}, "
                                 f"smaller than patch_size {p}")
            mh, mw = min(self.margin(), (h - p) // 2), min(self.margin(), (w - p) // 2)
            top = int(rng.integers(0, h - p - 2 * mh + 1))
            left = int(rng.integers(0, w - p - 2 * mw + 1))
            gt = gt[top:top + p + 2 * mh, left:left + p + 2 * mw]
        lq = self.degrade(gt, rng)
        if mh or mw:
            lq = lq[mh:mh + p, mw:mw + p]
            gt = gt[mh:mh + p, mw:mw + p]
        lq, gt, _ = paired_random_augment(lq, gt, rng, self.use_flip, self.use_rot)
        return lq, gt, name

    # ------------------------------------------------------------------ degradations
    def degrade(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """This dataset's degradation of one clean HxWx3 image, every random choice drawn from rng."""
        q = self.params
        img = np.ascontiguousarray(img, dtype=np.float32)
        if self.degradation in ("gaussian_noise", "poisson_gaussian_noise"):
            # gray_noise: a gray image (R = G = B) is noised as a gray photograph is, one field for all channels
            gray = self.gray_noise and is_gray(img)
            src = img[..., :1] if gray else img
            if self.degradation == "gaussian_noise":
                out = add_gaussian_noise(src, rng, q["sigma_min"], q["sigma_max"])
            else:
                out = add_poisson_gaussian_noise(src, rng, q["peak_min"], q["peak_max"], q["read_sigma_min"],
                                                 q["read_sigma_max"])
            return np.ascontiguousarray(np.repeat(out, 3, axis=2)) if gray else out
        if self.degradation == "motion_blur":
            return np.clip(apply_kernel(img, self._draw_kernel(rng)), 0.0, 1.0)
        # rain
        angle = rng.uniform(-q["rain_angle_max"], q["rain_angle_max"])
        streaks = np.zeros(img.shape[:2], np.float32)
        for _ in range(int(rng.integers(1, 3))):
            streaks += rain_layer(rng, img.shape[:2], rng.uniform(q["rain_density_min"], q["rain_density_max"]),
                                  int(rng.integers(q["rain_length_min"], q["rain_length_max"] + 1)),
                                  angle + rng.uniform(-3.0, 3.0),
                                  rng.uniform(q["rain_intensity_min"], q["rain_intensity_max"]))
        return np.clip(img + streaks[..., None], 0.0, 1.0)

    def export_pairs(self, out_dir: str, n: int = 0) -> list[str]:
        """Write the first n samples (0: all) as out_dir/{lq,gt}/<name>.png; returns the names."""
        return export_pairs(self, out_dir, n)


def export_pairs(dataset: RestorationDataset, out_dir: str, n: int = 0) -> list[str]:
    """Write `dataset[i]` for i < n (0: all) as PNGs `out_dir/lq/<name>.png` and `out_dir/gt/<name>.png`
    (8-bit, rounded), ready for PairedFolderDataset(lq_dir=out_dir/lq, gt_dir=out_dir/gt). Whole-image motion
    blur also writes each true kernel as `out_dir/kernel/<name>.npy` (float32, sums to 1) for the oracle
    deconvolution baselines."""
    count = len(dataset) if not n else min(int(n), len(dataset))
    kernels = getattr(dataset, "degradation", "") == "motion_blur" and not dataset.patch_size
    names = []
    for i in range(count):
        s = dataset[i]
        for key in ("lq", "gt"):
            write_image(os.path.join(out_dir, key, f"{s['name']}.png"), np.transpose(s[key], (1, 2, 0)))
        if kernels:
            write_kernel(os.path.join(out_dir, "kernel", f"{s['name']}.npy"), dataset.blur_kernel(i))
        names.append(s["name"])
    return names


def write_kernel(path: str, kernel: np.ndarray) -> None:
    """A blur kernel as .npy, atomically (read back with read_kernel: no pickles)."""
    with atomic_target(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(kernel, np.float32), allow_pickle=False)


def read_kernel(path: str) -> np.ndarray:
    """A kernel written by write_kernel: a 2-D float array that sums to 1; ImageError names the file otherwise."""
    try:
        kernel = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ImageError(f"{path}: not a readable .npy blur kernel: {e}") from None
    if kernel.ndim != 2 or not np.isfinite(kernel).all() or abs(float(kernel.sum()) - 1.0) > 1e-3:
        raise ImageError(f"{path}: a blur kernel must be a finite 2-D array summing to 1")
    return kernel.astype(np.float32)
