"""Datasets of paired image files in the layouts the official repos use (docs: reference §1-3).

Every path is checked when the dataset is built: a missing or empty folder is a one-line DatasetError
naming the path, the layout expected and where to download the data. Pairs are sorted by name. Images are
read lazily, one pair per sample, with `read_dataset_image` (RGB float32 in [0, 1]; gray/RGBA/16-bit converted;
the header judged first, `image_bound`).
"""
from __future__ import annotations

import os

from ..errors import ConfigError, DatasetError, ImageError
from ..registry import DATASETS
from .base import RestorationDataset
from .image_bound import read_dataset_image
from .image_io import is_image_file

SIDD_URL = "https://www.eecs.yorku.ca/~kamel/sidd/dataset.php"
GOPRO_URL = "https://seungjunnah.github.io/Datasets/gopro"
RAIN13K_URL = "https://github.com/swz30/MPRNet/blob/main/Deraining/Datasets/README.md"
REDS_URL = "https://seungjunnah.github.io/Datasets/reds.html"

PAIR_BY = ("stem", "sorted")


def _fail(what: str, path: str, problem: str, layout: str, url: str = "") -> DatasetError:
    where = f"; download: {url}" if url else ""
    return DatasetError(f"{what}: {path}: {problem}; expected {layout}{where}")


def _require_dir(what: str, path: str, layout: str, url: str = "") -> str:
    if not path:
        raise _fail(what, "''", "the path is not set", layout, url)
    if not os.path.isdir(path):
        problem = "is a file, not a folder" if os.path.exists(path) else "no such folder"
        raise _fail(what, path, problem, layout, url)
    return path


def _choice(what: str, key: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ConfigError(f"{what}: {key} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def list_images(folder: str, what: str, layout: str, url: str = "", prefix: str = "",
                subfolders: bool = False) -> list[tuple[str, str]]:
    """Sorted (name, path) of the image files in `folder`; with subfolders=True, also those one level down
    (sequence folders), named '<subfolder>_<stem>'. DatasetError when the folder is missing or holds none."""
    _require_dir(what, folder, layout, url)
    out = []
    for entry in sorted(os.listdir(folder)):
        full = os.path.join(folder, entry)
        if os.path.isfile(full) and is_image_file(entry):
            out.append((prefix + os.path.splitext(entry)[0], full))
        elif subfolders and os.path.isdir(full):
            for sub in sorted(os.listdir(full)):
                if is_image_file(sub) and os.path.isfile(os.path.join(full, sub)):
                    out.append((f"{prefix}{entry}_{os.path.splitext(sub)[0]}", os.path.join(full, sub)))
    if not out:
        raise _fail(what, folder, "no image files in this folder", layout, url)
    return out


def pair_files(lq: list[tuple[str, str]], gt: list[tuple[str, str]], lq_dir: str, gt_dir: str, what: str,
               pair_by: str = "stem") -> list[tuple[str, str, str]]:
    """[(name, lq_path, gt_path)]: by identical name (file stem), or by sorted order (pair_by='sorted')."""
    if pair_by == "sorted":
        if len(lq) != len(gt):
            raise DatasetError(f"{what}: {lq_dir} has {len(lq)} images but {gt_dir} has {len(gt)}; "
                               f"pair_by 'sorted' needs the same number")
        return [(a[0], a[1], b[1]) for a, b in zip(lq, gt)]
    for items, folder in ((lq, lq_dir), (gt, gt_dir)):
        names = [n for n, _ in items]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})[:3]
            raise DatasetError(f"{what}: {folder}: several files share a name apart from the extension "
                               f"({', '.join(dup)}); keep one per name")
    gt_map = dict(gt)
    lq_map = dict(lq)
    only_lq = [n for n, _ in lq if n not in gt_map]
    only_gt = [n for n, _ in gt if n not in lq_map]
    if only_lq or only_gt:
        def few(names):
            return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "") or "none"
        hint = ("; the counts match, so pair_by: sorted would pair them by sorted order"
                if len(lq) == len(gt) else "")
        raise DatasetError(f"{what}: {len(only_lq) + len(only_gt)} files have no partner with the same name "
                           f"(only in {lq_dir}: {few(only_lq)}; only in {gt_dir}: {few(only_gt)}){hint}")
    return [(n, p, gt_map[n]) for n, p in lq]


class PairedFilesDataset(RestorationDataset):
    """Shared machinery: a list of (name, lq_path, gt_path), read lazily."""

    def __init__(self, patch_size=0, use_flip=False, use_rot=False, skip_bad=False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        self.pairs: list[tuple[str, str, str]] = []

    def __len__(self) -> int:
        return len(self.pairs)

    def load_pair(self, index: int):
        name, lq_path, gt_path = self.pairs[index]
        lq = read_dataset_image(lq_path)  # judged by its header first: a decompression bomb is one line
        gt = read_dataset_image(gt_path)
        if lq.shape != gt.shape:
            raise ImageError(f"{lq_path} is {lq.shape[1]}x{lq.shape[0]} but its ground truth {gt_path} is "
                             f"{gt.shape[1]}x{gt.shape[0]} (WxH)")
        return lq, gt, name

    def describe(self, index: int) -> str:
        return self.pairs[index][1]

    def _set_pairs(self, lq_dir, gt_dir, layout, url, pair_by="stem", subfolders=False):
        what = type(self).__name__
        lq = list_images(lq_dir, what, layout, url, subfolders=subfolders)
        gt = list_images(gt_dir, what, layout, url, subfolders=subfolders)
        self.pairs = pair_files(lq, gt, lq_dir, gt_dir, what, pair_by)


@DATASETS.register
class PairedFolderDataset(PairedFilesDataset):
    """Any two folders of images: degraded inputs in `lq_dir`, ground truths in `gt_dir`.

    Files are paired by identical stem (`a.jpg` with `a.png`); `pair_by: sorted` pairs them by sorted
    order instead (as MPRNet's loaders and MATLAB scripts do). Sample names are the lq stems.
    """

    def __init__(self, lq_dir: str = "", gt_dir: str = "", pair_by: str = "stem", patch_size: int = 0,
                 use_flip: bool = False, use_rot: bool = False, skip_bad: bool = False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        _choice("PairedFolderDataset", "pair_by", pair_by, PAIR_BY)
        self.lq_dir, self.gt_dir = lq_dir, gt_dir
        for key, path in (("lq_dir", lq_dir), ("gt_dir", gt_dir)):
            _require_dir("PairedFolderDataset", path, f"{key} = a folder of images")
        self._set_pairs(lq_dir, gt_dir, "lq_dir and gt_dir = folders of images with matching names", "",
                        pair_by)


SIDD_LAYOUTS = {
    "mirnet": ("input", "groundtruth"),    # MIRNet/MPRNet generate_patches_SIDD.py: 256 patches
    "hinet": ("input_crops", "gt_crops"),  # HINet scripts/data_preparation/sidd.py: 512 crops
    "mprnet": ("input", "target"),         # MPRNet's Denoising/dataset_RGB.py reads target/
}


@DATASETS.register
class SIDDDataset(PairedFilesDataset):
    """SIDD-Medium sRGB training patches, or the validation blocks dumped to PNG.

    `root` holds `input/` + `groundtruth/` (MIRNet's patches), `input_crops/` + `gt_crops/` (HINet's
    512 crops, also HINet's val PNGs) or `input/` + `target/` (MPRNet); `layout: auto` picks the one
    present, or name it: 'mirnet', 'hinet', 'mprnet'. Files are paired by name.
    """

    def __init__(self, root: str = "", layout: str = "auto", patch_size: int = 0, use_flip: bool = False,
                 use_rot: bool = False, skip_bad: bool = False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        _choice("SIDDDataset", "layout", layout, ("auto",) + tuple(SIDD_LAYOUTS))
        expected = (f"{root or '<root>'}/{{input,groundtruth}} (MIRNet patches) or "
                    f"{root or '<root>'}/{{input_crops,gt_crops}} (HINet crops)")
        _require_dir("SIDDDataset", root, expected, SIDD_URL)
        if layout == "auto":
            found = [k for k, (a, b) in SIDD_LAYOUTS.items()
                     if os.path.isdir(os.path.join(root, a)) and os.path.isdir(os.path.join(root, b))]
            if not found:
                raise _fail("SIDDDataset", root, "none of the known SIDD layouts is here", expected, SIDD_URL)
            layout = found[0]
        self.root, self.layout = root, layout
        lq_sub, gt_sub = SIDD_LAYOUTS[layout]
        self._set_pairs(os.path.join(root, lq_sub), os.path.join(root, gt_sub),
                        f"{root}/{{{lq_sub},{gt_sub}}} with matching file names ({layout} layout)", SIDD_URL)


GOPRO_LAYOUTS = ("original", "mimo", "mprnet", "hinet_crops")


@DATASETS.register
class GoProDataset(PairedFilesDataset):
    """GoPro deblurring pairs; `root/<split>` in any of these layouts (`layout: auto` detects it):

    * 'original'    GOPRO_Large/<split>/GOPRxxxx_xx_xx/{blur,blur_gamma,sharp}/*.png (root = GOPRO_Large);
                    `blur_dir` picks blur or blur_gamma; samples are named '<sequence>_<frame>'
    * 'mimo'        MIMO-UNet's flattened GOPRO/<split>/{blur,sharp}/<sequence>_<frame>.png
    * 'mprnet'      HINet/MPRNet's GoPro/<split>/{input,target}/*.png
    * 'hinet_crops' HINet's GoPro/train/{blur_crops,sharp_crops} (512 crops)
    """

    def __init__(self, root: str = "", split: str = "train", blur_dir: str = "blur", layout: str = "auto",
                 patch_size: int = 0, use_flip: bool = False, use_rot: bool = False, skip_bad: bool = False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        what = "GoProDataset"
        _choice(what, "split", split, ("train", "test", "valid"))
        _choice(what, "blur_dir", blur_dir, ("blur", "blur_gamma"))
        _choice(what, "layout", layout, ("auto",) + GOPRO_LAYOUTS)
        r = root or "<root>"
        expected = (f"{r}/{split}/GOPRxxxx_xx_xx/{{{blur_dir},sharp}}/*.png (GOPRO_Large), "
                    f"{r}/{split}/{{blur,sharp}} (MIMO-UNet) or {r}/{split}/{{input,target}} (HINet/MPRNet)")
        _require_dir(what, root, expected, GOPRO_URL)
        split_dir = os.path.join(root, split)
        _require_dir(what, split_dir, expected, GOPRO_URL)
        sequences = sorted(d for d in os.listdir(split_dir)
                           if os.path.isdir(os.path.join(split_dir, d, "sharp"))
                           and os.path.isdir(os.path.join(split_dir, d, blur_dir)))
        if layout == "auto":
            if sequences:
                layout = "original"
            elif os.path.isdir(os.path.join(split_dir, blur_dir)) and os.path.isdir(os.path.join(split_dir, "sharp")):
                layout = "mimo"
            elif os.path.isdir(os.path.join(split_dir, "input")) and os.path.isdir(os.path.join(split_dir, "target")):
                layout = "mprnet"
            elif os.path.isdir(os.path.join(split_dir, "blur_crops")):
                layout = "hinet_crops"
            else:
                raise _fail(what, split_dir, "none of the known GoPro layouts is here", expected, GOPRO_URL)
        self.root, self.split, self.blur_dir, self.layout = root, split, blur_dir, layout
        if layout == "original":
            if not sequences:
                raise _fail(what, split_dir, f"no GOPRxxxx_xx_xx/{{{blur_dir},sharp}} sequence folders",
                            expected, GOPRO_URL)
            lq, gt = [], []
            for seq in sequences:
                lay = f"{split_dir}/<sequence>/{{{blur_dir},sharp}}/*.png with matching file names"
                lq += list_images(os.path.join(split_dir, seq, blur_dir), what, lay, GOPRO_URL, prefix=seq + "_")
                gt += list_images(os.path.join(split_dir, seq, "sharp"), what, lay, GOPRO_URL, prefix=seq + "_")
            self.pairs = pair_files(lq, gt, f"{split_dir}/*/{blur_dir}", f"{split_dir}/*/sharp", what)
            return
        subs = {"mimo": (blur_dir, "sharp"), "mprnet": ("input", "target"),
                "hinet_crops": ("blur_crops", "sharp_crops")}[layout]
        self._set_pairs(os.path.join(split_dir, subs[0]), os.path.join(split_dir, subs[1]),
                        f"{split_dir}/{{{subs[0]},{subs[1]}}} with matching file names ({layout} layout)",
                        GOPRO_URL)


RAIN13K_SPLITS = ("train", "Rain100H", "Rain100L", "Test100", "Test1200", "Test2800")


@DATASETS.register
class Rain13kDataset(PairedFilesDataset):
    """Rain13k (MPRNet's deraining data): `root/train/{input,target}` and `root/test/<set>/{input,target}`
    for the sets Rain100H, Rain100L, Test100, Test1200, Test2800. Paired by file name; `pair_by: sorted`
    pairs by sorted order as MPRNet's MATLAB evaluation does."""

    def __init__(self, root: str = "", split: str = "train", pair_by: str = "stem", patch_size: int = 0,
                 use_flip: bool = False, use_rot: bool = False, skip_bad: bool = False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        what = "Rain13kDataset"
        _choice(what, "split", split, RAIN13K_SPLITS)
        _choice(what, "pair_by", pair_by, PAIR_BY)
        r = root or "<root>"
        split_dir = os.path.join(r, "train") if split == "train" else os.path.join(r, "test", split)
        expected = (f"{split_dir}/{{input,target}} (Rain13k = MPRNet's Synthetic_Rain_Datasets: train/{{input,target}} "
                    f"and test/<set>/{{input,target}})")
        _require_dir(what, root, expected, RAIN13K_URL)
        _require_dir(what, split_dir, expected, RAIN13K_URL)
        self.root, self.split = root, split
        self._set_pairs(os.path.join(split_dir, "input"), os.path.join(split_dir, "target"), expected,
                        RAIN13K_URL, pair_by)


@DATASETS.register
class REDSDataset(PairedFilesDataset):
    """REDS (NTIRE 2021 deblurring track 2, blur + JPEG): `root/<split>/<split>_blur_jpeg/<seq>/<frame>.jpg`
    with `root/<split>/<split>_sharp/<seq>/<frame>.png`, split 'train' or 'val'. Samples are named
    '<seq>_<frame>'. `val_300: true` keeps the frames whose number ends in 9 (HINet's 300-image val subset).
    Folders of already flattened '<seq>_<frame>' files are read too."""

    def __init__(self, root: str = "", split: str = "train", val_300: bool = False, patch_size: int = 0,
                 use_flip: bool = False, use_rot: bool = False, skip_bad: bool = False):
        super().__init__(patch_size=patch_size, use_flip=use_flip, use_rot=use_rot, skip_bad=skip_bad)
        what = "REDSDataset"
        _choice(what, "split", split, ("train", "val"))
        r = root or "<root>"
        expected = f"{r}/{split}/{{{split}_blur_jpeg,{split}_sharp}}/<sequence>/<frame>"
        _require_dir(what, root, expected, REDS_URL)
        self.root, self.split, self.val_300 = root, split, bool(val_300)
        self._set_pairs(os.path.join(root, split, f"{split}_blur_jpeg"), os.path.join(root, split, f"{split}_sharp"),
                        expected, REDS_URL, subfolders=True)
        if self.val_300:
            self.pairs = [p for p in self.pairs if p[0].endswith("9")]
            if not self.pairs:
                raise _fail(what, os.path.join(root, split), "val_300 found no frame whose number ends in 9",
                            expected, REDS_URL)
