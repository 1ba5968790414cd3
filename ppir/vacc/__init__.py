"""Everything about VastAI VACC cards in one place: the runner (``runner``: pre/post-processing shared by the card
and its ONNX Runtime stand-in, and a whole run) and the inputs of the vamc compiler (``build``: build configs,
vdsp JSON, calibration sets, the networks' presets). Their command lines are ppir/commands/vacc_*.py."""
