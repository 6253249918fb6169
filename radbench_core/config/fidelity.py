"""The study's settings, each with its source, and the named deviations of our ``paper`` profile.

One registry serves three readers: ``docs/fidelity.md`` is rendered from it (a test keeps the two
equal), ``tests/test_fidelity.py`` pins every setting that has a hyperparameter key against the
``paper`` profile (so a drift fails a test), and the runner records, in every cell, the ids of the
deviations in effect for that cell (``CellResult.deviations``).

A :class:`Setting` with ``deviation=""`` is one we run exactly as the study did. One with a
``deviation`` id is a place where we knowingly differ (the study's way is flawed, or too slow); it
says the study's value, its source, ours and why. Where the deviation is a hyperparameter, the user
can set the study's value in a profile and the deviation disappears from that cell's record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAPER = "paper"     # sources: "paper B.1" (the arXiv text), "repo <path>" (MohammedSB/DINOv2ForRadiology)
GPU_AUTOCAST = "cuda_autocast_bf16"     # reported by the runner for cells run on a CUDA device


@dataclass(frozen=True)
class Setting:
    area: str                         # what it belongs to: a protocol id, "dataset:nih", "features", ...
    name: str                         # the setting, in words ("optimizer", "LoRA targets")
    study: str                        # the study's value, as text
    source: str                       # "paper B.1" or "repo dinov2/eval/classification/linear.py"
    ours: str                         # the paper profile's value, as text
    protocols: tuple[str, ...] = ()   # protocol ids whose cells it affects; () = all
    datasets: tuple[str, ...] = ()    # dataset ids whose cells it affects; () = all
    models: tuple[str, ...] = ()      # model ids whose cells it affects; () = all
    key: str = ""                     # hparams key that pins it ("" = fixed in code)
    value: Any = None                 # the paper profile's hparams[key]
    deviation: str = ""               # "" = as the study; else the deviation's id
    why: str = ""                     # for a deviation: why we differ
    reported_by_data: bool = False    # in effect only when the dataset's index reports it
    opt_in: Any = None                # opt-in deviation: the hparams[key] value that puts it in
                                      # effect (the paper profile runs the study's ``value``)
    resolutions: tuple[int, ...] = ()  # in effect only at these input sizes; () = any

    def affects(self, model: str, dataset: str, protocol: str) -> bool:
        return ((not self.protocols or protocol in self.protocols)
                and (not self.datasets or dataset in self.datasets)
                and (not self.models or model in self.models))


def _s(*args: Any, **kwargs: Any) -> Setting:
    return Setting(*args, **kwargs)


SETTINGS: tuple[Setting, ...] = (
    # --- classification protocols: kNN, linear, fine-tune, LoRA, BitFit ---
    _s("knn", "k grid", "best of k = 100, 200, 400, 800, 1000", "paper B.2", "the same grid",
       protocols=("knn",), key="ks", value=(100, 200, 400, 800, 1000)),
    _s("knn", "vote temperature (single-label)", "exp(sim / 0.07) weighted vote",
       "repo dinov2/eval/classification/knn.py", "0.07", protocols=("knn",), key="temperature",
       value=0.07),
    _s("knn", "ML-kNN smoothing (multi-label)", "s = 1 (Zhang & Zhou 2007)", "repo dinov2/eval/utils.py",
       "s = 1", protocols=("knn",), key="smoothing", value=1.0),
    _s("knn", "neighbour bank of the test queries", "train + val merged",
       "repo dinov2/eval/classification/mlknn.py", "train + val (k chosen with train as the bank)",
       protocols=("knn",)),
    _s("linear", "learning rates", "1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 1e-5", "paper B.2",
       "the same 8", protocols=("linear",), key="lrs", value=(1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 1e-5)),
    _s("linear", "head inputs", "class token of the last 1 or 4 blocks, with or without the mean "
       "patch token", "paper B.2", "the same 4 combinations per rate", protocols=("linear",),
       key="n_blocks", value=(1, 4)),
    _s("linear", "mean patch token", "with and without", "paper B.2", "both", protocols=("linear",),
       key="avgpool", value=(False, True)),
    _s("linear", "batch size", "128", "paper B.2", "128", protocols=("linear",), key="batch_size",
       value=128),
    _s("linear", "epochs", "per dataset, published only in the authors' drive; repo default 10",
       "repo dinov2/eval/classification/linear.py", "10", protocols=("linear",), key="epochs",
       value=10),
    _s("linear", "head-training images", "random scale [0.75, 1] + horizontal flip p=0.5 on the "
       "training images, heads trained on that backbone pass", "paper A.2", "the same, a new draw "
       "every epoch", protocols=("linear",), key="features", value="augmented"),
    _s("linear", "head-training features (opt-in)", "augmented images every epoch", "paper A.2",
       "features='cached': unaugmented cached features (the demo profile)", protocols=("linear",),
       key="features", value="augmented", opt_in="cached", deviation="linear_cached_features",
       why="one backbone pass in total instead of one per epoch; a user choice for speed"),
    _s("classification", "optimizer", "SGD, momentum 0.9", "repo dinov2/eval/classification/linear.py",
       "SGD, momentum 0.9", protocols=("linear", "finetune", "lora", "bitfit"), key="momentum",
       value=0.9),
    _s("classification", "weight decay", "0", "repo dinov2/eval/classification/linear.py", "0",
       protocols=("linear", "finetune", "lora", "bitfit"), key="weight_decay", value=0.0),
    _s("classification", "schedule", "CosineAnnealingLR per iteration to 0, no warm-up",
       "repo dinov2/eval/classification/linear.py", "the same",
       protocols=("linear", "finetune", "lora", "bitfit"), key="schedule", value="cosine"),
    _s("finetune", "optimizer", "SGD (momentum 0.9, no weight decay)",
       "repo dinov2/eval/classification/linear.py", "SGD", protocols=("finetune", "lora", "bitfit"),
       key="optimizer", value="sgd"),
    _s("finetune", "epochs", "20 on NIH, 10 on CheXpert", "paper B.1", "the same (10 elsewhere; "
       "LoRA and BitFit as fine-tuning, the study states none)", protocols=("finetune", "lora", "bitfit"),
       key="epochs", value={"nih": 20, "chexpert": 10, "*": 10}),
    _s("finetune", "batch size", "128 for CNNs, 32 for ViTs", "paper B.1", "the same, by architecture",
       protocols=("finetune", "lora", "bitfit"), key="batch_size", value={"cnn": 128, "vit": 32, "sam": 32}),
    _s("finetune", "backbone learning rates", "5e-4, 1e-4, 5e-5, 1e-5, 5e-6, 1e-6, 5e-7, 1e-7",
       "paper B.1", "the same 8", protocols=("finetune",), key="backbone_lrs",
       value=(5e-4, 1e-4, 5e-5, 1e-5, 5e-6, 1e-6, 5e-7, 1e-7)),
    _s("finetune", "head learning rate", "the best linear-probe rate", "paper B.1",
       "the linear probe's selected rate", protocols=("finetune",), key="head_lr", value="linear"),
    # the features of the probe that gives the head rate: switch finetune_head_lr_from_cached_probe
    _s("finetune", "head input", "last layer's class token, no mean patch token", "paper B.1",
       "the same (Backbone.head_features)", protocols=("finetune", "lora", "bitfit")),
    # the fine-tune's final model (refit of a new head on train + val) is switch finetune_no_trainval_refit
    _s("lora", "rank, alpha, dropout", "r=48, alpha=16, p=0.1", "paper B.3", "the same",
       protocols=("lora",), key="r", value=48),
    _s("lora", "alpha", "16", "paper B.3", "16", protocols=("lora",), key="alpha", value=16),
    _s("lora", "dropout", "0.1", "paper B.3", "0.1", protocols=("lora",), key="dropout", value=0.1),
    _s("lora", "target modules", "qkv, fc1, fc2", "repo dinov2/eval/classification/linear.py",
       "the same", protocols=("lora",), key="target_modules", value=("qkv", "fc1", "fc2")),
    _s("lora", "bias", "lora_only (the wrapped layers' biases train)",
       "repo dinov2/eval/classification/linear.py", "the same", protocols=("lora",), key="bias",
       value="lora_only"),
    _s("lora", "targets in ViT-g's SwiGLU FFN", "none: DINOv2's ViT-g names that FFN w12/w3, so "
       "fc1/fc2 matched only the attention qkv", "repo dinov2/eval/classification/linear.py",
       "the same: timm's fc1/fc2 inside a SwiGLU FFN are skipped", protocols=("lora",),
       models=("dinov2_vitg14",), key="lora_swiglu_ffn", value=False),
    _s("lora", "trainable parameters of ViT-g/14 (Table 9)", "printed 8M (0.7%)", "paper 4.4 (Table 9)",
       "12.0M (1.0%), computed: r=48 on the 40 qkv layers (48 x (1536 + 4608) x 40 = 11.8M) plus their "
       "biases and the head; the printed 8M cannot come from r=48 on these targets, so the table "
       "shows the computed count", protocols=("lora",), models=("dinov2_vitg14",)),
    _s("lora", "learning rates", "2e-4 for LoRA parameters, 5e-3 for the classifier", "paper B.3",
       "the same", protocols=("lora",), key="head_lr", value=5e-3),
    _s("bitfit", "trained parameters", "every bias ('bias' in the name) + the head",
       "repo dinov2/eval/utils.py", "the same", protocols=("bitfit",)),
    _s("bitfit", "learning rates", "not stated (repo: --backbone-learning-rate, default 1e-5; "
       "classifier from the probe's grid)", "repo dinov2/eval/classification/linear.py",
       "LoRA's: 2e-4 for biases, 5e-3 for the classifier", protocols=("bitfit",), key="backbone_lrs",
       value=(2e-4,), deviation="bitfit_rates_from_lora",
       why="the study gives no BitFit rate; LoRA's are the nearest stated ones"),
    _s("weights", "ResNet152 weights", "torchvision resnet152(weights=ResNet152_Weights.DEFAULT) = "
       "IMAGENET1K_V2 (resnet152-f82ba261.pth)", "repo dinov2/eval/utils.py:254; torchvision >= 0.13",
       "timm resnet152.tv2_in1k, the same file", models=("resnet152",)),
    _s("weights", "ViT-L/16 weights", "Hugging Face google/vit-large-patch16-224 "
       "(ViTForImageClassification.from_pretrained): the original ViT, ImageNet-21k pre-training + "
       "ImageNet-1k fine-tuning at 224 px", "repo dinov2/eval/utils.py:63",
       "the same file, loaded from its Hugging Face folder (weights dir or HF cache) into timm's ViT-L/16 "
       "with every tensor equal and transformers' LayerNorm eps 1e-12 (hf_layouts.hf_vit); in both "
       "profiles: it is the study's model, not a soundness question", models=("vit_l16_in21k",)),
    # --- datasets, labels, splits, few-shot sampling ---
    # SARS-CoV-2 and brain tumour: the study's unstratified systematic split vs our stratified one is
    # the data side of switch patient_split_70_10_20 (split_rule "study" / "ours")
    _s("dataset:nih", "label set of the macro AUROC",
       "15 outputs: the 14 findings + 'No Finding', sorted (MultiLabelBinarizer); MultilabelAUROC "
       "macro over all 15", "repo dinov2/data/datasets/nih_chest_xray.py",
       "the same 15 outputs in the same order", datasets=("nih",)),
    _s("dataset:chexpert", "label set",
       "Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion; -1 (uncertain) -> 0, "
       "blank -> 0; frontal views only", "repo dinov2/data/datasets/chexpert.py",
       "the same five, same order, uncertainty 'zeros'", datasets=("chexpert",)),
    _s("dataset:chexpert", "6th 'Uncertain' output",
       "a 6th output, 1 where any of the five is -1, trained and averaged into the macro AUROC",
       "repo dinov2/data/datasets/chexpert.py", "five outputs (paper Table 1: 5 classes)",
       datasets=("chexpert",), deviation="chexpert_no_uncertain_output",
       why="the official test labels hold no -1, so that output is constant on test and its AUROC "
           "undefined (torchmetrics scores it 0); published AUROCs above 5/6 show it was not in "
           "the reported mean"),
    _s("dataset:chexpert", "splits",
       "train = train.csv (191,027 frontal), val = official valid (202 frontal), test = official "
       "test labels (518 frontal)", "repo dinov2/data/datasets/chexpert.py",
       "the same, when test.csv (or test_labels.csv) is beside train.csv", datasets=("chexpert",)),
    _s("dataset:chexpert", "test split without the test labels", "official test (518 frontal)",
       "repo dinov2/data/datasets/chexpert.py",
       "every tenth train patient (systematic), val still the official valid",
       datasets=("chexpert",), deviation="chexpert_test_from_train", reported_by_data=True,
       why="the test labels are a separate download; in effect only when the loader reports it "
           "(index.deviations); add CheXpert-v1.0-small/test.csv and test/ to get the study's split"),
    _s("fewshot", "few-shot sampler",
       "per label in column order, the first n patients (id order) whose images all carry it; a "
       "patient already taken is skipped, not replaced; NIH's 'No Finding' is a label too",
       "repo dinov2/data/utils.py", "the same (sampler 'study'; 'seeded' is ours)",
       protocols=("fewshot",), key="sampler", value="study"),
    _s("fewshot", "runs per shot count", "one deterministic sample, one run, no seeds",
       "repo dinov2/data/wrappers.py", "1", protocols=("fewshot",), key="seeds", value=1),
    _s("fewshot", "patients per class", "1, 2, 4, 8, 16", "paper 4.3", "1, 2, 4, 8, 16",
       protocols=("fewshot",), key="shot_grid", value=(1, 2, 4, 8, 16)),
    # --- features: backbones, positional embeddings, pooled features ---
    _s("features", "DINOv2 position table at 224/448/1024 px",
       "interpolated on every forward from the 37x37 (518 px) table: bicubic, scale factor "
       "(grid + 0.1) / 37, no antialias (interpolate_pos_encoding)", "repo dinov2/models/vision_transformer.py",
       "the same formula on every forward from the stored table (pos_embed.dinov2_resize; timm's "
       "antialiased resample is replaced)",
       models=("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14")),
    _s("features", "DINOv2 with registers position table (beyond the study)",
       "the hub's reg models resize with interpolate_antialias=True, interpolate_offset=0.0: bicubic "
       "to the new size, antialiased", "repo dinov2/hub/backbones.py",
       "the same formula on every forward (pos_embed.dinov2_reg_resize)",
       models=("dinov2_vitl14_reg4", "dinov2_vitg14_reg4")),
    _s("features", "MAE / MSN / CLIP / OpenCLIP / ViT-L/16 position tables",
       "Hugging Face models at their native 224 px grid (no interpolation: the study ran them at 224 only)",
       "repo dinov2/eval/utils.py",
       "native grid at 224; off 224 each model's own code: MAE interpolate_pos_embed (bicubic by size), "
       "MSN deit interpolate_pos_encoding (bicubic by scale factor), open_clip resize_pos_embed "
       "(antialiased bicubic), vit_jax zoom (linear, corners aligned)",
       models=("mae_vitl16", "msn_vitl16", "clip_vitl14", "openclip_vith14", "vit_l16_in21k")),
    _s("features", "SAM position table", "the 64x64 table added as is at 1024 px (the encoder only runs there)",
       "repo dinov2/eval/utils.py", "the same at 1024; off 1024 timm's antialiased bicubic (no official rule)",
       models=("sam_vitl16",)),
    _s("features", "SAM 'CLS' (Table 8)",
       "neck replaced by Identity; mean of the last block's 64x64 tokens (last_hidden_state)",
       "repo dinov2/eval/utils.py", "the same: neck pruned, mean of the last block's tokens",
       models=("sam_vitl16",)),
    _s("features", "VGG19 feature",
       "torchvision vgg19 with classifier[6] = Identity: fc7 after ReLU, 4096-d (avgpool to 7x7, fc6, "
       "ReLU, Dropout 0.5, fc7, ReLU, Dropout 0.5; the dropouts act while fine-tuning)",
       "repo dinov2/eval/utils.py", "the same (fc6/fc7 kept, both dropouts 0.5)", models=("vgg19",)),
    _s("features", "ResNet152 / DenseNet201 feature",
       "torchvision model with fc / classifier = Identity: global average of the last stage (after "
       "DenseNet's final ReLU)", "repo dinov2/eval/utils.py", "the same", models=("resnet152", "densenet201")),
    # the Hugging Face ViTs' final LayerNorm is switch vit_tokens_after_final_norm
    # --- segmentation: decoders, training, metric, preprocessing ---
    _s("seg_unet", "U-Net decoder", "last block as bottleneck, skips from the 4 blocks before it (normed "
       "tokens, get_intermediate_layers n=5); 4 up blocks: 2x2 transposed conv, skip conv3x3+BN+ReLU "
       "resized bilinearly, conv3x3+BN+ReLU on the concatenation; widths D/2, D/4, D/8, classes; "
       "bicubic resize of the 16x-grid output", "paper 3.3; repo dinov2/eval/segmentation/utils.py",
       "the same layers (17.2M trainable on ViT-L/14, 38.7M on ViT-g/14 with one class)",
       protocols=("seg_unet", "seg_fewshot")),
    _s("seg_linear", "linear decoder", "one 1x1 conv (N(0, 0.01) weights, zero bias) on the last block's "
       "normed patch tokens, bilinear upsampling, no batch norm", "repo dinov2/eval/segmentation/utils.py",
       "the same", protocols=("seg_linear",)),
    _s("segmentation", "loss", "soft Dice over all classes incl. background, per sample (MONAI DiceLoss "
       "softmax=True, to_onehot_y=True)", "paper B.4; repo dinov2/eval/segmentation/segmentation.py",
       "the same (losses.dice_loss)", protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch")),
    _s("segmentation", "learning rates", "{1e-2, 5e-2, 1e-3, 5e-3}", "paper B.4", "the same",
       protocols=("seg_linear", "seg_unet", "seg_fewshot"), key="lrs", value=[1e-2, 5e-2, 1e-3, 5e-3]),
    _s("segmentation", "batch size", "16", "paper B.4", "16",
       protocols=("seg_linear", "seg_unet", "seg_fewshot"), key="batch_size", value=16),
    _s("segmentation", "optimizer", "SGD", "repo dinov2/eval/segmentation/segmentation.py; unet.ipynb",
       "SGD", protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"), key="optimizer", value="sgd"),
    _s("segmentation", "momentum", "0.9", "repo dinov2/eval/segmentation/segmentation.py", "0.9",
       protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"), key="momentum", value=0.9),
    _s("segmentation", "weight decay", "0", "repo dinov2/eval/segmentation/segmentation.py", "0",
       protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"), key="weight_decay", value=0.0),
    _s("segmentation", "schedule", "cosine to 0, stepped every iteration", "repo "
       "dinov2/eval/segmentation/segmentation.py", "the same (seg_training.fit)",
       protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch")),
    _s("segmentation", "epochs (decoders)", "per dataset, listed on an unpublished drive (paper B.4); "
       "the released Montgomery script runs 50", "paper B.4; repo run.sh", "50",
       protocols=("seg_linear", "seg_unet", "seg_fewshot"), key="epochs", value=50),
    _s("segmentation", "augmentation", "horizontal and vertical flips p=0.25, rotation up to 90 degrees "
       "(the text; the released code differs from it: after the resize, RandomVerticalFlip(0.25) twice, "
       "its 'hflip' being a vertical flip, then RandomRotation(90) with nearest interpolation and fill 0 "
       "in raw units, before the min-max; radbench follows the text)",
       "paper A.2; repo dinov2/data/transforms.py:128-140", "the same as the text on the training slices",
       protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"), key="augment", value=True),
    _s("segmentation", "which state of a run is scored", "each rate's final state (no epoch choice "
       "during the sweep)", "repo dinov2/eval/segmentation/segmentation.py", "the same",
       protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"), key="select_epoch", value="last"),
    _s("segmentation", "selection metric", "validation Dice pooled over all slices at the training "
       "resolution (torchmetrics, macro, ignore_index=0)", "repo dinov2/eval/segmentation/segmentation.py",
       "the same", protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"),
       key="select_metric", value="dice_study"),
    _s("segmentation", "final model", "the chosen rate retrained from scratch on train + val "
       "(val augmented like train) for the full epochs, then tested", "paper A.1; repo "
       "dinov2/eval/segmentation/segmentation.py; unet.ipynb", "the same",
       protocols=("seg_linear", "seg_unet", "scratch"), key="refit", value=True),
    _s("seg_fewshot", "final model (few-shot)", "the chosen rate retrained on the same n images (val "
       "not merged)", "repo dinov2/eval/segmentation/segmentation.py", "the selected run itself: same "
       "images, rate, seed and epochs, so the retrain would repeat it", protocols=("seg_fewshot",),
       key="refit", value=False),
    _s("segmentation", "headline metric", "(Dice + Jaccard) / 2 with torchmetrics Dice and "
       "MulticlassJaccardIndex (macro, ignore_index=0) pooled over all test slices at the training "
       "resolution", "paper 4; repo dinov2/eval/metrics.py", "dice_jaccard: per test volume at its native "
       "size, class-mean, item bootstrap CI; the study's value recorded beside it as dice_jaccard_study "
       "(dice_study, jaccard_study)", protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"),
       deviation="seg_metric_per_volume_native",
       why="the pooled score is dominated by the largest volumes and scores resized masks; torchmetrics' "
           "Jaccard with ignore_index=0 drops every pixel whose truth is background, so false positives "
           "never count (for one class it is recall)"),
    _s("scratch", "learning rates (scratch U-Net / TransUNet)", "1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1",
       "repo unet.ipynb; transunet.ipynb", "the same", protocols=("scratch",), key="lrs",
       value=[1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1]),
    _s("scratch", "batch size (scratch)", "8", "repo unet.ipynb; transunet.ipynb", "8",
       protocols=("scratch",), key="batch_size", value=8),
    _s("scratch", "sweep epochs (scratch)", "50 per rate", "repo unet.ipynb; transunet.ipynb", "50",
       protocols=("scratch",), key="sweep_epochs", value=50),
    _s("scratch", "retrain epochs (scratch)", "100 on train + val", "repo unet.ipynb; transunet.ipynb",
       "100", protocols=("scratch",), key="epochs", value=100),
    _s("dataset:amos", "CT intensity window", "clip to [-1024, 600] HU", "paper A.2", "the same, scaled "
       "to [0, 1] (preprocess.window_ct)", datasets=("amos",)),
    _s("dataset:msd", "MSD intensity window", "each slice clipped to its own 5th-95th percentile "
       "(Heart and Hippocampus MRI, and Spleen CT); paper A.2 says per volume for MRI",
       "repo dinov2/data (MSD slice loaders); paper A.2", "per slice, as the code "
       "(preprocess.window_percentile_per_slice)", datasets=("msd_heart", "msd_hippocampus", "msd_spleen")),
    _s("classification", "scores the AUROC ranks (single-label heads)", "the sigmoid of each logit "
       "(LinearPostprocessor), MulticlassAUROC macro over the classes: a class's score is its own logit "
       "only (SARS-CoV-2 has 2 logits, so the mean of AUROC(logit 0) for negatives and AUROC(logit 1) "
       "for COVID)", "repo dinov2/eval/classification/utils.py:55-61; dinov2/eval/metrics.py",
       "softmax probabilities: SARS-CoV-2 P(COVID) = softmax(logits)[1], brain tumour the softmax of "
       "each class, macro AUROC", protocols=("linear", "linear_subset", "fewshot", "finetune", "lora",
                                              "bitfit"),
       datasets=("sarscov2", "brain_tumor"), deviation="auroc_scores_softmax",
       why="a head trained with softmax cross-entropy predicts a class by its logit relative to the "
           "others; ranking by one logit alone scores a quantity the loss never trained"),
    _s("dataset:brain_tumor", "MRI intensity", "per image: values above the 95th percentile set to "
       "it, values at or below the 5th percentile set to 0 (not to the 5th percentile), then the "
       "per-image min-max", "repo dinov2/data/datasets/brain_tumor.py get_image_data",
       "clipped to the 5th-95th percentile and scaled to [0, 1]", datasets=("brain_tumor",),
       deviation="brain_tumor_clip_low_percentile",
       why="setting the dark tail to 0 leaves a jump from 0 to the 5th percentile that the min-max "
           "keeps; clipping gives the same window without it"),
    _s("dataset:sarscov2", "volume preprocessing", "one augmentation draw per patient volume (a "
       "shared seed for its slices), min-max per slice", "repo dinov2/data/datasets/sars_cov_2_ct.py "
       "__getitem__", "an augmentation draw per slice, one intensity scale per volume",
       datasets=("sarscov2",), deviation="sarscov2_slice_draws_volume_scale",
       why="one scale per volume keeps the slices' intensities comparable, as the scanner wrote them"),
    _s("segmentation", "NIfTI slice orientation", "the stored array as is: get_fdata().transpose(2, "
       "0, 1), whatever the affine says", "repo dinov2/data/datasets/msd_spleen.py slice_it; amos.py",
       "reoriented to RAS+ (nibabel.as_closest_canonical), then radiological slices (volumes.py)",
       protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch"),
       datasets=("amos", "msd_spleen", "msd_hippocampus", "msd_heart"), deviation="nifti_canonical_orientation",
       why="volumes stored with different axis orders or flips would otherwise reach the model in "
           "different orientations"),
    _s("scratch", "learning-rate schedule of the refit", "the notebook keeps the train split's epoch "
       "length after merging train + val, so the cosine's T_max is too short and the rate rises "
       "again late in the refit", "repo unet.ipynb; transunet.ipynb", "cosine to 0 over the refit's own "
       "steps (seg_training.fit)", protocols=("scratch",), deviation="scratch_refit_cosine_length",
       why="a cosine that restarts is an artefact of a stale variable, not a schedule anyone chose"),
    _s("segmentation", "input resize of images", "Resize((R, R), BICUBIC) on the image tensor "
       "(torchvision 0.15: no antialiasing), masks NEAREST_EXACT (make_segmentation_*_transforms)",
       "repo dinov2/data/transforms.py:120-165; conda.yaml (torchvision 0.15)",
       "bilinear with antialiasing (as PIL); masks nearest-exact, the same",
       protocols=("seg_linear", "seg_unet", "seg_fewshot", "scratch", "scratch_fewshot"),
       deviation="seg_resize_antialiased",
       why="a bicubic shrink without antialiasing aliases fine texture (the classification side is "
           "switch cls_eval_resize_antialiased)"),
    _s("dataset:chexpert", "image resolution of the release", "CheXpert-v1.0, the full-resolution "
       "release (make_val_set(data_dir='.../CheXpert-v1.0/'); exprements.ipynb resizes its test set "
       "to 1024 px)", "repo dinov2/data/datasets/chexpert.py make_val_set; exprements.ipynb",
       "either release, as found; with CheXpert-v1.0-small (about 320-390 px, the phantom's layout) "
       "Table 8's 1022 / 1024 px cells upsample", datasets=("chexpert",),
       deviation="chexpert_small_release", reported_by_data=True,
       why="recorded when the data folder holds the small release, the one most users have; the "
           "full release gives the study's input"),
    _s("features", "mixed precision on a GPU", "fp16 autocast (the config's teacher param_dtype fp16)", "repo dinov2/eval/setup.py:63-70 "
       "get_autocast_dtype; dinov2/configs/ssl_default_config.yaml", "bf16 autocast on CUDA, fp32 on CPU",
       deviation=GPU_AUTOCAST, reported_by_data=True,
       why="bf16 keeps fp32's exponent range (no overflow in large activations, no loss scaling); "
           "recorded only for cells run on a CUDA device"),
    # --- profile: which cells, resolutions, subsets ---
    _s("report", "Table 6 parameter counts", "with one output class: U-Net 31M, TransUNet 324M, "
       "frozen ViT-L/14 17M (5%) of 317M, ViT-g/14 38M (3%) of 1,138M", "paper 4.1 (Table 6 caption)",
       "computed from the full-size architectures with one output class (meta device), never typed in"),
    _s("report", "Table 9 trainable share of the linear probe", "printed 1,500 (1e-6%)",
       "paper 4.4 (Table 9)", "computed: 1,537 of 1.14B = 1.4e-4 % (the printed percentage is 100x "
       "too small; the count agrees)"),
    _s("report", "best and second-best marks", "best bold, second best underlined",
       "paper 4.1 (Table 4)", "in every study table: bold / underline (LaTeX, HTML), bold / italic "
       "(Markdown), ties share the mark"),
    _s("report:figure1", "models ranked",
       "CLIP ViT-L/14, OpenCLIP ViT-H/14, MAE ViT-L/16, MSN ViT-L/16, DINOv2 ViT-L/14, ViT-g/14; "
       "supervised models compared separately (T7, T8)", "paper 4.2",
       "the same six (report.ranking.FIGURE1_MODELS); supervised models are not ranked"),
    _s("report:figure1", "scores and ranks",
       "per dataset a score 1..6 (6 = best), mean over datasets, rank 1 = highest mean score",
       "paper 4.2", "the same; ties share the mean score and the mean rank"),
    _s("report:figure1", "cells compared",
       "classification: linear probe AUROC on 4 datasets; segmentation: U-Net decoder on 5 datasets, "
       "all six at 224 px (Table 5; only DINOv2 also at 448)", "paper 4.2",
       "linear at the classification size (224 px); seg_unet@224 scored by dice_jaccard_study where "
       "every compared cell of a dataset has it (else dice_jaccard); without 224 px cells, the size "
       "most models share"),
    _s("report:figure1", "datasets with missing models",
       "every model on every dataset (the figure's caption)", "paper 4.2",
       "a dataset counts only when every ranked model has a value (the published tables give "
       "SARS-CoV-2 and Brain tumor for DINOv2 only, so the published ranking averages NIH and "
       "CheXpert); if no dataset is complete, ranks among those present scaled to 1..N"),
    _s("report:figure5", "panels",
       "NIH few-shot classification and MC few-shot segmentation; top row DINOv2 ViT-L/14 vs CLIP, "
       "OpenCLIP, MAE, MSN; bottom row vs supervised models; x = patients per class", "paper 4.3",
       "the same 2 x 2 grid (fewshot@N on NIH; seg_fewshot@N and scratch_fewshot@N on MC); supervised: "
       "vit_l16_in21k, densenet201, resnet152, vgg19 (NIH) and unet, transunet from scratch (MC), where "
       "run; with several seeds (sound) the mean with a +-1 SD band; the 'All' points are the table "
       "cells, as the study drew them (NIH: linear probe; MC: seg_unet@224, DINOv2 in the bottom row "
       "seg_unet@448, scratch@448; report/figure5_all.py), never a re-run @all cell beside them"),
    _s("profile", "Table 8 subset size", "systematic sample of the train split, default 5,000 items "
       "(SystemicSamplerWrapper; --num-samples 10000 in the dev run.sh)",
       "repo dinov2/eval/classification/linear.py:433-435; dinov2/data/wrappers.py:26-30; paper 4.2 "
       "(Table 8)", "at most 2,000 items per capped split, evenly spaced (which splits: switch "
       "table8_cap_every_split)",
       protocols=("linear_subset",), key="max_items", value=2000, deviation="table8_subset_size",
       why="keeps 1024 px extraction affordable"),
    # the linear probe's epoch choice and the few-shot classification settings are switches
    # (linear_epoch_on_val, fewshot_select_on_val_no_refit, fewshot_own_grid)
    _s("profile", "Table 8 input size", "1024 px for SAM and DINOv2", "paper 4.2 (Table 8)",
       "1024 px for SAM (cells linear_subset@1024)"),
    _s("profile", "Table 8 input size, patch-14 models", "1024 px", "paper 4.2 (Table 8)",
       "1022 px (73 patches of 14)", protocols=("linear_subset",),
       models=("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14", "dinov2_vitg14", "dinov2_vitl14_reg4",
               "clip_vitl14", "openclip_vith14"),
       deviation="table8_patch14_at_1022px", resolutions=(1022,),
       why="1024 is not a multiple of 14 and DINOv2's own patch embedding refuses it; the nearest "
           "whole-patch size below is used"),
    _s("profile", "Figure 4 resolution", "DINOv2 ViT-L/14, linear vs U-Net decoder; size not stated",
       "paper 4.1 (Figure 4)", "448 px, the size of the study's Table 6 DINOv2 rows (seg_linear@448 "
       "beside seg_unet@448)"),
    _s("profile", "Figure 5 models", "NIH + MC; DINOv2 ViT-L/14 vs CLIP, OpenCLIP, MAE, MSN (top) and "
       "vs supervised models (bottom); x = 1, 2, 4, 8, 16, All", "paper 4.3 (Figure 5); repo "
       "dinov2/visualization/few-shot_mc.png", "NIH: the four supervised classifiers; MC: U-Net and "
       "TransUNet from scratch on the same n images (scratch_fewshot@1..16 at 448 px); the All "
       "points are the Table 5 / 6 cells; the x-axis is hparams['fewshot']['shot_grid']"),
    _s("profile", "Figure 5 MC bottom row: DINOv2 ViT-L/14 size", "448 px (the bottom-row curve "
       "ends at Table 6's 448 px cell)", "repo dinov2/visualization/few-shot_mc.png",
       "the same: seg_fewshot@N_448px (a few-shot cell id may name its size, core/cells.py), drawn in "
       "the bottom row; the top row's curve is seg_fewshot@N at 224 px", protocols=("seg_fewshot",),
       models=("dinov2_vitl14",)),
)


def deviations() -> dict[str, Setting]:
    """Every declared deviation by id: the fixed ones and every switch (id = its sound side)."""
    from radbench_core.config.switches import SWITCHES
    found = {s.deviation: s for s in SETTINGS if s.deviation}
    for w in SWITCHES:
        found[w.id] = Setting(w.family, w.name, w.study_text, w.source, w.sound_text, w.protocols,
                              w.datasets, w.models, key=w.key, value=w.sound, deviation=w.id, why=w.why)
    return found


def deviations_in_effect(model: str, dataset: str, protocol: str, hparams: dict[str, Any],
                         reported: tuple[str, ...] = (), *, resolution: int | None = None) -> list[str]:
    """Ids of the deviations that apply to one cell with these (configured) hyperparameters.

    A deviation pinned to a hyperparameter is in effect only while the cell's value equals ours: a
    profile that sets the study's value has no such deviation. One that depends on the data (a
    fallback split when a file is missing) is in effect only when the loader ``reported`` it. One
    about a size holds only at that ``resolution``. A switch (config/switches.py) is a
    deviation while it is not at the study's value.
    """
    from radbench_core.config.switches import switched_off_study
    found = [r for r in reported if r] + switched_off_study(model, dataset, protocol, hparams)
    for s in SETTINGS:
        if not s.deviation or not s.affects(model, dataset, protocol):
            continue
        if s.reported_by_data and s.deviation not in reported:
            continue
        if s.resolutions and resolution is not None and resolution not in s.resolutions:
            continue
        if s.key and not _same(hparams.get(s.key, _MISSING), s.value if s.opt_in is None else s.opt_in):
            continue
        found.append(s.deviation)
    return sorted(set(found))


_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


HEADLINE_NOTE = (
    "Why our segmentation headline differs from the study's metric. We headline (Dice + Jaccard) / 2 "
    "computed per test volume at its native size, averaged over volumes and then over classes, with "
    "a bootstrap interval over volumes. The study pooled every test slice at the training resolution. "
    "A pooled score is dominated by the largest scans and organs, so a small structure missed in "
    "several patients barely moves it, and it scores masks resized for the network rather than the "
    "annotation. With torchmetrics' `MulticlassJaccardIndex(ignore_index=0)`, as the study's code "
    "calls it, every pixel whose true class is background is dropped before counting, so foreground "
    "predicted on background is never penalised: for a one-class task the study's Jaccard is recall, "
    "and its (Dice + Jaccard) / 2 rewards over-segmentation. Per-volume native-size scores count "
    "each patient once and every false-positive voxel. Records keep the study's pooled numbers "
    "beside ours (`dice_study`, `jaccard_study`, `dice_jaccard_study`), and the study's tables "
    "compare on those.")


def to_markdown() -> str:
    """docs/fidelity.md: the switches, then the fixed deviations, then the settings run as the study."""
    from radbench_core.config.switches import switches_markdown
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")
    lines = ["# Fidelity to the study", "",
             "Generated from `radbench_core/config/fidelity.py` (`python -m radbench_core.config.fidelity > docs/fidelity.md`); a test "
             "keeps this file equal to the registry. Sources: *paper* = the arXiv text (section or "
             "appendix), *repo* = the study's code, MohammedSB/DINOv2ForRadiology.", "",
             *switches_markdown(), "",
             "## Fixed deviations (both profiles)", "",
             "Each id below is written into the `deviations` list of every record it affects, and the "
             "HTML report lists those in effect.", "",
             "| id | area | setting | study (source) | ours | why |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        if s.deviation:
            lines.append(f"| `{s.deviation}` | {esc(s.area)} | {esc(s.name)} | {esc(s.study)} "
                         f"({esc(s.source)}) | {esc(s.ours)} | {esc(s.why)} |")
    lines += ["", "## The segmentation metric", "", HEADLINE_NOTE]
    lines += ["", "## Settings run as the study ran them", "",
              "| area | setting | study | ours | source | pinned by |", "|---|---|---|---|---|---|"]
    for s in SETTINGS:
        if not s.deviation:
            pin = f"`hparams[{s.key!r}]`" if s.key else "code (tested)"
            lines.append(f"| {esc(s.area)} | {esc(s.name)} | {esc(s.study)} | {esc(s.ours)} | "
                         f"{esc(s.source)} | {pin} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":      # python -m radbench_core.config.fidelity > docs/fidelity.md
    print(to_markdown(), end="")
