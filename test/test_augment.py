"""Training augmentations (sgdepth_training.data.augment) and camera-side selection (sgdepth_training.data.sides)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sgdepth_training.data.augment import (
    CityscapesTrainTransform, ColorJitterParams, KittiTrainTransform, apply_color_jitter,
    flip_intrinsics, sample_color_jitter,
)
from sgdepth_training.data.augment import _resize_image, _resize_labels
from sgdepth_training.data.kitti import KITTI_DEFAULT_K_NORMALISED
from sgdepth_training.data.sides import both_sides, select_sides
from sgdepth_training.data.splits import SplitEntry
from sgdepth_training.data.stream import SeededSamples, StreamBatchSampler, derive_seed

H, W = 6, 10  # tiny KITTI frames
OFFSETS = (0, -1, 1)


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def default_K(width: int = W, height: int = H) -> torch.Tensor:
    K = torch.eye(4, dtype=torch.float64)
    K[:3, :3] = torch.from_numpy(KITTI_DEFAULT_K_NORMALISED)
    K[0] *= width
    K[1] *= height
    return K.float()


def kitti_sample(seed: int = 0, same_frames: bool = False) -> dict:
    gen = rng(seed)
    base = torch.rand(3, H, W, generator=gen)
    sample = {("color", o): base.clone() if same_frames else torch.rand(3, H, W, generator=gen) for o in OFFSETS}
    sample["K"] = default_K()
    sample["inv_K"] = torch.linalg.inv(sample["K"])
    sample["depth_gt"] = torch.rand(1, 4, 7, generator=gen)
    sample["folder"], sample["frame"], sample["side"] = "2011_09_26/x", 3, "l"
    return sample


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.samples = [kitti_sample(i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


def assert_samples_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


# -- intrinsics under flipping ---------------------------------------------------------------------------------------
def project(K: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    p = K.double()[:3, :3] @ point.double()
    return p[:2] / p[2]


@pytest.mark.parametrize("K", [default_K(640, 192), torch.tensor(
    [[371.0, 2.5, 301.7, 0.0], [0.0, 368.0, 90.2, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])])
def test_flipped_K_projects_mirrored_point_onto_mirrored_pixel(K):
    width = 640
    Kf = flip_intrinsics(K, width)
    for point in ([1.3, -0.4, 7.0], [-2.0, 0.7, 3.5], [0.0, 0.0, 10.0]):
        X = torch.tensor(point)
        u, v = project(K, X)
        uf, vf = project(Kf, X * torch.tensor([-1.0, 1.0, 1.0]))
        assert float(uf) == pytest.approx((width - 1) - float(u), abs=1e-4)
        assert float(vf) == pytest.approx(float(v), abs=1e-4)
    assert Kf.dtype == K.dtype
    assert torch.allclose(flip_intrinsics(Kf, width), K)  # an involution


def test_flipped_default_K_moves_cx_by_one_pixel():
    Kf = flip_intrinsics(default_K(640, 192), 640)
    assert float(Kf[0, 2]) == pytest.approx(319.0)  # cx = 320 is 0.5 px right of the mirror axis 319.5
    assert float(Kf[0, 0]) == pytest.approx(0.58 * 640) and float(Kf[1, 1]) == pytest.approx(1.92 * 192)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, 3\]"):
        flip_intrinsics(torch.eye(2), 10)


# -- KITTI transform -------------------------------------------------------------------------------------------------
def test_kitti_flip_reverses_every_frame_and_corrects_K():
    sample = kitti_sample()
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in sample.items()}
    out = KittiTrainTransform(flip_p=1.0, jitter_p=0.0)(sample, rng())
    assert_samples_equal(sample, before)  # input untouched
    for o in OFFSETS:
        assert torch.equal(out[("color", o)], sample[("color", o)][:, :, torch.arange(W - 1, -1, -1)])
        assert torch.equal(out[("color_aug", o)], out[("color", o)])
    assert torch.equal(out["depth_gt"], sample["depth_gt"].flip(-1))
    assert torch.allclose(out["K"], flip_intrinsics(sample["K"], W))
    assert float(out["K"][0, 2]) == pytest.approx(W - 1 - 0.5 * W)
    assert torch.allclose(out["inv_K"] @ out["K"], torch.eye(4), atol=1e-6)
    assert out["K"].dtype == out["inv_K"].dtype == torch.float32
    assert (out["folder"], out["frame"], out["side"]) == ("2011_09_26/x", 3, "l")


def test_kitti_no_flip_no_jitter_is_identity_plus_color_aug():
    sample = kitti_sample()
    out = KittiTrainTransform(flip_p=0.0, jitter_p=0.0)(sample, rng())
    for key in sample:
        if isinstance(sample[key], torch.Tensor):
            assert torch.equal(out[key], sample[key])
    for o in OFFSETS:
        assert torch.equal(out[("color_aug", o)], sample[("color", o)])
        assert out[("color_aug", o)].data_ptr() != sample[("color", o)].data_ptr()


def test_kitti_jitter_same_parameters_for_all_frames():
    out = KittiTrainTransform(flip_p=0.0, jitter_p=1.0)(kitti_sample(same_frames=True), rng(3))
    augs = [out[("color_aug", o)] for o in OFFSETS]
    assert all(torch.equal(a, augs[0]) for a in augs[1:])
    assert not torch.allclose(augs[0], out[("color", 0)])
    # With distinct frames: each frame gets the parameters drawn after the two coins (documented draw order).
    sample = kitti_sample(1)
    out = KittiTrainTransform(flip_p=0.0, jitter_p=1.0)(sample, rng(5))
    gen = rng(5)
    torch.rand((), generator=gen), torch.rand((), generator=gen)
    params = sample_color_jitter(gen)
    for o in OFFSETS:
        assert torch.equal(out[("color_aug", o)], apply_color_jitter(sample[("color", o)], params))
        assert torch.equal(out[("color", o)], sample[("color", o)])


def test_kitti_probabilities_are_honoured():
    transform = KittiTrainTransform()
    sample = kitti_sample()
    flips = jitters = 0
    for seed in range(400):
        out = transform(sample, rng(seed))
        flips += not torch.equal(out[("color", 0)], sample[("color", 0)])
        jitters += not torch.equal(out[("color_aug", 0)], out[("color", 0)])
    assert 160 <= flips <= 240 and 160 <= jitters <= 240
    never = KittiTrainTransform(flip_p=0.0, jitter_p=0.0)
    assert all(torch.equal(never(sample, rng(s))[("color", 0)], sample[("color", 0)]) for s in range(20))


# -- colour jitter ---------------------------------------------------------------------------------------------------
def test_neutral_jitter_is_exact_identity():
    image = torch.rand(3, H, W, generator=rng())
    assert torch.equal(apply_color_jitter(image, ColorJitterParams(1.0, 1.0, 1.0, 0.0)), image)
    assert torch.equal(apply_color_jitter(image, sample_color_jitter(rng(), 0.0, 0.0, 0.0, 0.0)), image)


def test_jitter_order_and_effects():
    image = torch.rand(3, H, W, generator=rng()) * 0.8
    assert torch.allclose(apply_color_jitter(image, ColorJitterParams(brightness=1.2)), (image * 1.2).clamp(0, 1))
    p = ColorJitterParams(1.1, 0.9, 1.15, 0.05)
    import torchvision.transforms.functional as TF
    expected = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(image, 1.1), 0.9), 1.15),
                             0.05)
    assert torch.allclose(apply_color_jitter(image, p), expected)
    batch = torch.stack([image, image.flip(-1)])
    assert torch.allclose(apply_color_jitter(batch, p)[1], apply_color_jitter(image.flip(-1), p))
    with pytest.raises(ValueError, match=r"\[\.\.\., 3, H, W\]"):
        apply_color_jitter(torch.rand(4, H, W), p)


def test_jitter_sampling_ranges_and_validation():
    draws = [sample_color_jitter(rng(s)) for s in range(200)]
    for name, low, high in (("brightness", 0.8, 1.2), ("contrast", 0.8, 1.2), ("saturation", 0.8, 1.2),
                            ("hue", -0.1, 0.1)):
        values = [getattr(d, name) for d in draws]
        assert low <= min(values) < low + 0.05 and high - 0.05 < max(values) <= high
    with pytest.raises(ValueError, match="brightness jitter range must be finite and >= 0"):
        sample_color_jitter(rng(), brightness=-0.1)
    with pytest.raises(ValueError, match=r"hue jitter range must be in \[0, 0.5\]"):
        sample_color_jitter(rng(), hue=0.6)
    with pytest.raises(ValueError, match=r"hue shift must be in \[-0.5, 0.5\]"):
        ColorJitterParams(hue=0.7)
    with pytest.raises(ValueError, match="contrast factor"):
        ColorJitterParams(contrast=-1.0)


# -- determinism -----------------------------------------------------------------------------------------------------
def test_derive_seed_is_stable_and_distinct():
    seeds = {derive_seed(7, "depth", e, i) for e in range(3) for i in range(50)}
    assert len(seeds) == 150 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(7, "depth", 1, 2) == derive_seed(7, "depth", 1, 2) != derive_seed(8, "depth", 1, 2)


def test_seeded_samples_reproducible_per_seed_pass_index():
    data = SeededSamples(ListDataset(6), KittiTrainTransform(), seed=11, name="depth")
    forward = [data[(i, 2)] for i in range(6)]
    backward = [data[(i, 2)] for i in reversed(range(6))][::-1]
    for a, b in zip(forward, backward):
        assert_samples_equal(a, b)
    again = SeededSamples(ListDataset(6), KittiTrainTransform(), seed=11, name="depth")
    assert_samples_equal(again[(4, 2)], forward[4])
    assert any(not torch.equal(data[(i, 3)][("color_aug", 0)], forward[i][("color_aug", 0)]) for i in range(6))


def test_seeded_stream_independent_of_worker_count_and_start():
    data = SeededSamples(ListDataset(4), KittiTrainTransform(), seed=3, name="depth")
    loader0 = DataLoader(data, batch_sampler=StreamBatchSampler(4, 2, 3, "depth"), num_workers=0)
    loader2 = DataLoader(data, batch_sampler=StreamBatchSampler(4, 2, 3, "depth"), num_workers=2,
                         persistent_workers=True, multiprocessing_context="fork")
    resumed = DataLoader(data, batch_sampler=StreamBatchSampler(4, 2, 3, "depth", start=3), num_workers=0)
    batches0 = [b for b, _ in zip(loader0, range(5))]  # 5 batches = 2.5 passes
    batches2 = [b for b, _ in zip(loader2, range(5))]
    for a, b in zip(batches0, batches2):
        for key in (("color", 0), ("color_aug", 1), "K", "inv_K"):
            assert torch.equal(a[key], b[key])
    for a, b in zip(batches0[3:], resumed):
        assert torch.equal(a[("color_aug", 0)], b[("color_aug", 0)])


def test_stream_batches_cover_each_pass_and_split_across_ranks():
    sampler = StreamBatchSampler(10, 2, seed=0, name="x")
    first_pass = [i for b, _ in zip(sampler, range(5)) for i, p in b]
    assert sorted(first_pass) == list(range(10))
    ranks = [StreamBatchSampler(10, 2, 0, "x", rank=r, world_size=2) for r in (0, 1)]
    assert ranks[0].batches_per_pass == 2  # drop_last of the global batch of 4
    seen = [i for r in ranks for b, _ in zip(r, range(2)) for i, p in b]
    assert len(seen) == len(set(seen)) == 8
    assert sampler.batch(7) == [b for b, _ in zip(sampler, range(8))][-1]
    with pytest.raises(ValueError, match="fewer than one batch"):
        StreamBatchSampler(3, 2, 0, "tiny", world_size=2)


# -- Cityscapes transform --------------------------------------------------------------------------------------------
PALETTE = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9], [0.7, 0.7, 0.1]])
LABEL_VALUES = torch.tensor([0, 7, 13, 255])  # palette index i ↔ label LABEL_VALUES[i]


def city_sample(height: int = 48, width: int = 96) -> dict:
    """Blocks of labels (asymmetric left/right) with the image colour encoding the label."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    index = ((xs // 24) + (ys // 16) * (xs < 60)) % 4
    return {"color": PALETTE[index].permute(2, 0, 1).contiguous(), "segmentation": LABEL_VALUES[index],
            "path": "p.png"}


def test_cityscapes_default_shapes_and_dtypes():
    ys, xs = torch.meshgrid(torch.arange(512), torch.arange(1024), indexing="ij")
    sample = {"color": torch.rand(3, 512, 1024, generator=rng()), "segmentation": ((xs // 100 + ys // 100) % 19)}
    transform = CityscapesTrainTransform()
    for seed in range(3):
        out = transform(sample, rng(seed))
        assert out["color"].shape == out["color_aug"].shape == (3, 192, 640)
        assert out["segmentation"].shape == (192, 640) and out["segmentation"].dtype == torch.int64
        assert out["color"].dtype == torch.float32
        assert not torch.equal(out["color"], out["color_aug"])  # jitter always applied
        assert set(out["segmentation"].unique().tolist()) <= set(range(19))


def test_cityscapes_flip_consistency_and_label_values():
    sample = city_sample()
    exact = CityscapesTrainTransform(48, 96, max_zoom_out=1.0, flip_p=1.0)(sample, rng())
    assert torch.equal(exact["color"], sample["color"].flip(-1))
    assert torch.equal(exact["segmentation"], sample["segmentation"].flip(-1))
    transform = CityscapesTrainTransform(12, 40, max_zoom_out=1.5)
    input_labels = set(LABEL_VALUES.tolist())
    for seed in range(30):
        out = transform(sample, rng(seed))
        labels = out["segmentation"]
        assert set(labels.unique().tolist()) <= input_labels
        expected = PALETTE[torch.searchsorted(LABEL_VALUES, labels)].permute(2, 0, 1)
        match = ((out["color"] - expected).abs().amax(0) < 1e-3).float().mean()
        assert match > 0.75, (seed, float(match))  # only pixels at block borders are blended


def test_cityscapes_pads_with_ignore_and_black_when_too_small():
    sample = city_sample(10, 20)
    sample["segmentation"] = torch.zeros(10, 20, dtype=torch.int64)
    sample["color"] = torch.ones(3, 10, 20)
    out = CityscapesTrainTransform(16, 24, max_zoom_out=1.0, jitter_p=0.0)(sample, rng())
    assert out["segmentation"].shape == (16, 24)
    assert set(out["segmentation"].unique().tolist()) == {0, 255}
    assert (out["segmentation"] == 255).sum() == 16 * 24 - 10 * 20
    assert torch.equal(out["color"][0] == 0, out["segmentation"] == 255)
    assert torch.equal(out["color_aug"], out["color"])


def test_cityscapes_zoom_out_range():
    height, width, crop = 40, 120, 40
    labels = torch.arange(width).expand(height, width).clone()  # label = source column
    sample = {"color": torch.rand(3, height, width, generator=rng()), "segmentation": labels}
    transform = CityscapesTrainTransform(10, crop, max_zoom_out=1.5, flip_p=0.0, jitter_p=0.0)
    scales = []
    for seed in range(100):
        row = transform(sample, rng(seed))["segmentation"][0].double()
        scales.append(float(row[-1] - row[0]) / (crop - 1))  # source columns per output column
    assert 0.97 <= min(scales) < 1.06 and 1.44 < max(scales) <= 1.55
    assert all(0.97 <= s <= 1.55 for s in scales)


def test_resizers_match_pil():
    image = torch.rand(3, 64, 128, generator=rng())
    for h, w in ((42, 85), (51, 102), (64, 128)):
        ours = _resize_image(image, h, w).numpy()
        pil = np.stack([np.asarray(Image.fromarray(c.numpy()).resize((w, h), Image.BILINEAR)) for c in image])
        assert np.abs(ours - pil).max() < 1e-3
    # Odd source sizes: (i + 1/2)·in/out is never an exact integer, so PIL's float rounding cannot break a tie.
    labels = torch.randint(0, 19, (63, 127), generator=rng(), dtype=torch.uint8)
    ours = _resize_labels(labels, 45, 91).numpy()
    assert np.array_equal(ours, np.asarray(Image.fromarray(labels.numpy()).resize((91, 45), Image.NEAREST)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(out_height=0), "out_height must be a positive integer"),
    (dict(out_width=2.5), "out_width must be a positive integer"),
    (dict(max_zoom_out=0.9), "max_zoom_out must be a finite number >= 1.0"),
    (dict(flip_p=1.5), r"flip_p must be a probability in \[0, 1\]"),
    (dict(jitter_p=-0.1), r"jitter_p must be a probability in \[0, 1\]"),
    (dict(saturation=-1), "saturation jitter range"),
])
def test_cityscapes_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CityscapesTrainTransform(**kwargs)


def test_kitti_validation():
    with pytest.raises(ValueError, match=r"flip_p must be a probability in \[0, 1\]"):
        KittiTrainTransform(flip_p=2)
    with pytest.raises(ValueError, match="hue jitter range"):
        KittiTrainTransform(hue=-0.1)
    with pytest.raises(KeyError, match="color"):
        KittiTrainTransform()({"K": torch.eye(4)}, rng())


# -- camera sides ----------------------------------------------------------------------------------------------------
ENTRIES = [SplitEntry("a/d1", 5, "l"), SplitEntry("a/d1", 6, "r"), SplitEntry("a/d2", 1, "l"),
           SplitEntry("a/d1", 5, "r")]


def test_select_sides():
    assert select_sides(ENTRIES) == select_sides(ENTRIES, "listed") == ENTRIES
    frames = [("a/d1", 5), ("a/d1", 6), ("a/d2", 1)]
    lefts = [SplitEntry(f, i, "l") for f, i in frames]
    rights = [SplitEntry(f, i, "r") for f, i in frames]
    assert both_sides(ENTRIES) == select_sides(iter(ENTRIES), "both") == lefts + rights
    assert select_sides(ENTRIES, "left") == lefts and select_sides(ENTRIES, "right") == rights
    assert both_sides([]) == []
    with pytest.raises(ValueError, match="mode must be one of 'listed', 'both', 'left', 'right'"):
        select_sides(ENTRIES, "stereo")
    with pytest.raises(TypeError, match="SplitEntry"):
        select_sides([("a/d1", 5, "l")], "both")
    with pytest.raises(TypeError, match="SplitEntry"):
        select_sides([("a/d1", 5, "l")], "listed")
