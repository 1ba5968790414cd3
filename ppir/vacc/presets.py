"""VastAI VACC build recipes (VastModelZOO's), keyed by network name: what `ppir vacc-build-config --preset NAME`
writes a config for, and which constructor arguments a network must have been exported with to fit its recipe.

The network files hold only the network's physical facts (rounding, seed shape, size rules); everything about
compiling it for the card is here.
"""
from __future__ import annotations

# network (registry name) -> preset name -> {model, config, overrides, shape (H, W), weights, calib_num,
# calib_hint, note}. A subclass (MIMOUNetPlus) has no recipe of its own.
PRESETS = {
    "HINet": {"hinet_sidd": {
        "model": "HINet", "config": "configs/hinet_sidd_0.5x.yml", "overrides": [], "shape": (256, 256),
        "weights": "HINet-SIDD-0.5x.pth", "calib_num": 100,
        "calib_hint": "SIDD validation noisy crops; VastModelZOO calibrates on 100", "note": ""}},
    # VastAI switched MIMO-UNet's resampling to bilinear because nearest hit a VDSP size limit in int8 at
    # 360x640; ppir's bilinear variant changes numerics, so it is a separate export.
    "MIMOUNet": {"mimo_unet_gopro": {
        "model": "MIMOUNet", "config": "configs/mimo_unet_gopro.yml", "overrides": ["model.resize_mode=bilinear"],
        "shape": (360, 640), "weights": "MIMO-UNet.pkl", "calib_num": 50,
        "calib_hint": "GoPro test blurred frames; VastModelZOO calibrates on 50",
        "note": "resize_mode: bilinear (model.resize_mode=bilinear at export). VastAI switched MIMO-UNet's "
                "resampling to bilinear because nearest hit a VDSP size limit in int8 at 360x640; it changes "
                "numerics, so it is a separate export, not the official network"}},
}

# network -> constructor argument -> (the value the recipe needs, why). Export records whether the exported
# network meets them (inference.yml's vacc_problem), so the VACC build can refuse an export that does not. A
# subclass is held to its parent's (MIMOUNetPlus to MIMOUNet's).
REQUIREMENTS = {
    "MIMOUNet": {"resize_mode": ("bilinear", "nearest hits a VDSP size limit in int8 at 360x640")},
}


def presets() -> dict:
    """Every network's VACC presets, by preset name."""
    return {key: preset for network in PRESETS.values() for key, preset in network.items()}


def vacc_problem(model) -> str:
    """Why this network, as built, does not fit its VACC recipe (one line), or "" when it does."""
    for cls in type(model).__mro__:
        for arg, (want, why) in REQUIREMENTS.get(cls.__name__, {}).items():
            have = getattr(model, arg, None)
            if have != want:
                return (f"exported with {arg}={have}; the VACC recipe needs {arg}={want} ({why}): export with "
                        f"-o model.{arg}={want}")
    return ""
