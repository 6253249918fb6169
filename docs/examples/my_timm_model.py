"""A timm model as a radbench backbone: one ModelSpec (here DeiT-S/16, supervised on ImageNet-1k).

Real runs load its weights from the Hugging Face cache (``huggingface-cli download timm/<arch.tag>``)
or ``<weights dir>/deit_s16.safetensors``; the demo profile builds the tiny ``demo_kwargs`` variant.
"""

from radbench_core.models.specs import ModelSpec

DEIT_S16 = ModelSpec(
    id="deit_s16", label="DeiT-S/16 (ImageNet-1k)", paradigm="supervised", family="deit", arch="vit",
    timm_name="deit_small_patch16_224.fb_in1k", patch_size=16, native_resolution=224,
    tasks=("classification", "segmentation"), hub_id="timm/deit_small_patch16_224.fb_in1k",
    demo_kwargs=dict(embed_dim=32, depth=4, num_heads=2))
