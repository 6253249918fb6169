"""A profile that starts from the built-in demo and compares the user's entries with the study's."""

from radbench_core.config.profiles import Grid, get_profile

PROFILE = get_profile("demo").extend(
    "byo", description="a timm model, an nn.Module, a CSV dataset and a protocol beside DINOv2",
    grids=(Grid(("deit_s16", "small_cnn", "dinov2_vits14"), ("ward_cxr", "nih"), ("knn", "centroid")),),
    replace_grids=True,
    hparams={"centroid": {"temperature": 0.1, "bootstrap_resamples": 50}},
    phantom_size="tiny")
