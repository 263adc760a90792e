"""The trainer's method parts against hand-computed values: warping, losses, gradient scales, DC masking."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sgdepth_ros.model import SGDepth
from sgdepth_ros.postprocess import disparity_to_depth
from sgdepth_training import geometry, losses, step
from sgdepth_training.masking import (MaskingSchedule, dynamic_iou, dynamic_pixels, masking_fraction,
                                      moving_mask)
from sgdepth_training.network import JointNetwork, normalize, segment


def intrinsics(n: int, fx=50.0, fy=40.0, cx=15.5, cy=7.5) -> tuple[torch.Tensor, torch.Tensor]:
    K = torch.eye(4).repeat(n, 1, 1)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2] = fx, fy, cx, cy
    return K, torch.linalg.inv(K)


# --------------------------------------------------------------------------------------------------- geometry
def test_zero_motion_warp_reproduces_the_source_exactly():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 32)
    depth = torch.rand(2, 1, 16, 32) * 50 + 1
    K, inv_K = intrinsics(2)
    grid = geometry.sampling_grid(depth, torch.eye(4).repeat(2, 1, 1), K, inv_K)
    warped = geometry.warp(image, grid)
    assert torch.allclose(warped, image, atol=1e-5)
    labels = torch.randint(0, 19, (2, 16, 32))
    assert torch.equal(geometry.warp_labels(labels, grid), labels)


def test_sideways_translation_shifts_by_focal_times_baseline_over_depth():
    depth = torch.full((1, 1, 16, 32), 10.0)
    K, inv_K = intrinsics(1)
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = 0.4  # target point lands 0.4 m further right in the source camera
    grid = geometry.sampling_grid(depth, T, K, inv_K)
    x_pixels = (grid[..., 0] + 1) / 2 * (32 - 1)
    expected = torch.arange(32.0) + 50.0 * 0.4 / 10.0  # fx·t/z = 2 pixels
    assert torch.allclose(x_pixels[0], expected.expand(16, 32), atol=1e-4)
    # an image that is a ramp in x warps to the ramp shifted by 2 pixels (interior, away from the border)
    ramp = torch.arange(32.0).view(1, 1, 1, 32).expand(1, 1, 16, 32)
    warped = geometry.warp(ramp, grid)
    assert torch.allclose(warped[..., :28], ramp[..., :28] + 2.0, atol=1e-4)


def test_backproject_then_project_is_the_pixel_grid():
    depth = torch.rand(1, 1, 8, 12) * 10 + 1
    K, inv_K = intrinsics(1, fx=20, fy=20, cx=5.5, cy=3.5)
    points = geometry.backproject(depth, inv_K)
    assert torch.allclose(points[:, 2].view(1, 1, 8, 12), depth)  # z is the depth (REP 118 / camera-z)
    grid = geometry.project(points, K, torch.eye(4)[None], 8, 12)
    xs = torch.linspace(-1, 1, 12)
    assert torch.allclose(grid[0, 3, :, 0], xs, atol=1e-5)


def test_disparity_to_depth_range():
    d = disparity_to_depth(torch.tensor([0.0, 1.0, 0.5]))  # the runtime's formula on tensors (view synthesis)
    assert torch.allclose(d, torch.tensor([100.0, 0.1, 1 / (0.01 + 9.99 * 0.5)]))


# --------------------------------------------------------------------------------------------------- losses
def test_photometric_error_on_constant_images_by_hand():
    a, b = torch.full((1, 3, 5, 6), 0.2), torch.full((1, 3, 5, 6), 0.4)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim = (2 * 0.2 * 0.4 + c1) * c2 / ((0.2 ** 2 + 0.4 ** 2 + c1) * c2)
    expected = 0.85 * (1 - ssim) / 2 + 0.15 * 0.2
    err = losses.photometric_error(a, b)
    assert err.shape == (1, 1, 5, 6)
    assert torch.allclose(err, torch.full_like(err, expected), atol=1e-6)
    assert torch.allclose(losses.photometric_error(a, a), torch.zeros_like(err), atol=1e-6)


def test_min_reprojection_takes_the_minimum_including_identity():
    target = torch.zeros(1, 3, 4, 4)
    near, far = torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.5)
    pe = {v: float(losses.photometric_error(torch.full((1, 3, 4, 4), v), target)[0, 0, 0, 0]) for v in (0.1, 0.5)}
    # sources identical to the target (static scene / object moving with the camera): automasking gives 0 error
    with_mask = losses.min_reprojection(target, [near, far], [target, far], automask=True)
    without = losses.min_reprojection(target, [near, far], [target, far], automask=False)
    assert torch.allclose(with_mask, torch.zeros_like(with_mask), atol=1e-6)
    # automasking off: the reference takes no minimum, it averages the two reprojection errors
    assert torch.allclose(without, torch.full_like(without, (pe[0.1] + pe[0.5]) / 2), atol=1e-6)
    averaged = losses.min_reprojection(target, [near, far], [far, far], automask=True, average=True)
    assert torch.allclose(averaged, torch.full_like(averaged, (pe[0.1] + pe[0.5]) / 2), atol=1e-6)
    per_pixel = losses.min_reprojection(target, [torch.cat((near[..., :2], far[..., 2:]), -1),
                                                 torch.cat((far[..., :2], near[..., 2:]), -1)], [far, far])
    assert float(per_pixel.max()) < pe[0.5]  # each pixel takes the better warp


def test_identity_wins_marks_the_pixels_the_auto_mask_takes_from_an_identity_error():
    target = torch.zeros(1, 3, 4, 4)
    near, mid, far = (torch.full((1, 3, 4, 4), v) for v in (0.1, 0.3, 0.5))
    left_near = torch.cat((near[..., :2], far[..., 2:]), -1)  # a warp that explains the left half better
    wins = losses.identity_wins(target, [left_near, far], [mid, mid])
    assert wins.shape == (1, 1, 4, 4) and wins.dtype == torch.bool
    assert not wins[..., :2].any() and wins[..., 2:].all()
    error = losses.min_reprojection(target, [left_near, far], [mid, mid])
    pe = {name: losses.photometric_error(image, target) for name, image in
          (("mid", mid), ("left_near", left_near), ("far", far))}
    best_warp = torch.minimum(pe["left_near"], pe["far"])
    assert torch.equal(error, torch.where(wins, pe["mid"], best_warp))  # the loss takes what identity_wins says
    assert losses.identity_wins(target, [near], [near]).all()  # a tie goes to the identity error, the first


def test_smoothness_by_hand():
    image = torch.zeros(1, 3, 4, 9)
    flat = torch.full((1, 1, 4, 9), 0.3)
    assert float(losses.smoothness(flat, image)) == pytest.approx(0.0, abs=1e-7)
    ramp = torch.arange(9.0).view(1, 1, 1, 9).expand(1, 1, 4, 9) + 0.0
    # mean-normalised: d/4, so |∂x| = 1/4 everywhere, no y change, edge weight e^0 = 1
    assert float(losses.smoothness(ramp, image)) == pytest.approx(0.25, rel=1e-5)
    edges = torch.zeros(1, 3, 4, 9)
    edges[..., 5:] = 1.0  # an image edge between columns 4 and 5 lowers the weight there to e^-1
    expected = (7 * 0.25 + 0.25 * math.exp(-1)) / 8
    assert float(losses.smoothness(ramp, edges)) == pytest.approx(expected, rel=1e-5)


def test_depth_loss_scale_combination_and_mask_denominator():
    errors = [torch.full((1, 1, 16, 32), v) for v in (0.1, 0.2, 0.3, 0.4)]
    disps = [torch.full((1, 1, 16 // 2 ** s, 32 // 2 ** s), 0.5) for s in range(4)]
    target = torch.zeros(1, 3, 16, 32)
    loss, parts = losses.depth_loss(errors, disps, target)
    assert float(loss) == pytest.approx(0.25, rel=1e-6)  # flat disparity: no smoothness term
    mask = torch.ones(1, 1, 16, 32)
    mask[..., :16] = 0  # half the pixels masked: they stay in the denominator
    masked, _ = losses.depth_loss(errors, disps, target, mask)
    assert float(masked) == pytest.approx(0.125, rel=1e-6)


def test_depth_loss_pools_the_mask_onto_coarser_error_maps():
    errors = [torch.ones(1, 1, 16 // 2 ** s, 32 // 2 ** s) for s in range(4)]  # photometric_resolution native
    disps = [torch.full(e.shape, 0.5) for e in errors]
    mask = torch.ones(1, 1, 16, 32)
    mask[0, 0, 0, 0] = 0  # one masked input pixel masks the coarse pixel over it at every scale
    loss, _ = losses.depth_loss(errors, disps, torch.zeros(1, 3, 16, 32), mask)
    expected = sum(1 - 1 / e.numel() for e in errors) / 4
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_scale_intrinsics_projects_to_the_resized_pixel_grid():
    K, inv_K = intrinsics(1)
    small, inv_small = geometry.scale_intrinsics(K, inv_K, 0.25, 0.5)
    assert torch.allclose(inv_small, torch.linalg.inv(small), atol=1e-6)
    assert torch.allclose(small[0, :3, :3], torch.tensor([[12.5, 0, 15.5 / 4], [0, 20.0, 3.75], [0, 0, 1]]))
    assert torch.equal(small[0, 2:], K[0, 2:])
    point = torch.tensor([1.0, -0.5, 4.0, 1.0])
    full, quarter = (K[0] @ point)[:3], (small[0] @ point)[:3]
    assert torch.allclose(quarter[:2] / quarter[2], full[:2] / full[2] * torch.tensor([0.25, 0.5]))


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_native_resolution_views_agree_at_the_true_depth_at_every_scale(scale):
    """photometric_resolution native: frames area-downsampled with K scaled stay consistent — a sideways camera
    translation over a fronto-parallel textured plane is explained exactly by the true depth at the coarse scale,
    while a 30 % error is not; "full" keeps the input size and upsamples the disparity."""
    torch.manual_seed(0)
    H, W, shift = 32, 128, 16  # 16 px at the input size: 2^(4-scale) px at the scale
    texture = torch.nn.functional.avg_pool2d(torch.rand(1, 3, H, W + shift), 3, 1, 1)
    colors = {0: texture[..., :W], 1: texture[..., shift:]}  # frame 1's camera is `shift` px to the right
    K, inv_K = intrinsics(1, fx=64.0, fy=64.0, cx=63.5, cy=15.5)
    T = torch.eye(4)[None].clone()
    T[0, 0, 3] = -1.0  # target point → source camera: x − 1 m (the source camera is 1 m to the right)
    depth_m = 64.0 * 1.0 / shift  # fx·t/z = shift → z = 4 m
    h, w = H // 2 ** scale, W // 2 ** scale
    disp = torch.full((1, 1, h, w), 0.5)
    d, frames, K_s, inv_K_s = step._view_synthesis_inputs(disp, colors, K, inv_K, "native")
    assert d is disp and frames[0].shape[-2:] == (h, w) and torch.allclose(K_s @ inv_K_s, torch.eye(4), atol=1e-6)
    inside = (Ellipsis, slice(1, -1), slice(shift // 2 ** scale + 1, -1))  # seen by both cameras

    def error(z):
        grid = geometry.sampling_grid(torch.full((1, 1, h, w), z), T, K_s, inv_K_s)
        return losses.photometric_error(geometry.warp(frames[1], grid), frames[0])[inside].mean()

    assert float(error(depth_m)) < 1e-3 < float(error(1.3 * depth_m))
    d_full, frames_full, K_full, _ = step._view_synthesis_inputs(disp, colors, K, inv_K, "full")
    assert d_full.shape[-2:] == (H, W) and frames_full is colors and K_full is K


def test_segmentation_loss_weighted_mean_with_ignore_by_hand():
    logits = torch.zeros(1, 20, 1, 3)
    logits[0, 0, 0, 0] = 2.0
    logits[0, 13, 0, 1] = 1.0
    target = torch.tensor([[[0, 13, 255]]])
    w = losses.SEG_CLASS_WEIGHTS
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 19))
    ce1 = -math.log(math.exp(1) / (math.exp(1) + 19))
    expected = (w[0] * ce0 + w[13] * ce1) / (w[0] + w[13])
    assert float(losses.segmentation_loss(logits, target)) == pytest.approx(expected, rel=1e-5)
    assert losses.SEG_CLASS_WEIGHTS[19] == 0.0 and len(losses.SEG_CLASS_WEIGHTS) == 20


# --------------------------------------------------------------------------------------------------- network
def _shared_and_head_grads(model: SGDepth, x_depth, x_seg, use_depth: bool, use_seg: bool):
    model.zero_grad()
    out = JointNetwork(model)({0: x_depth}, x_seg)
    loss = 0.0
    if use_depth:
        loss = loss + out.disparities[0].square().mean()
    if use_seg:
        loss = loss + out.seg_logits.square().mean()
    loss.backward()
    shared = model.common.encoder.encoder.layer4[1].conv2.weight.grad.clone()
    decoder = model.common.decoder.blocks["step_0"].conv.weight.grad.clone()
    head = model.depth.multires.convs[0].weight.grad
    return shared, decoder, None if head is None else head.clone()


def test_shared_gradients_are_point_nine_depth_plus_point_one_segmentation():
    torch.manual_seed(0)
    model = SGDepth(pose_layers=None, grad_scales=(0.9, 0.1)).double().train()
    x_depth, x_seg = torch.randn(2, 3, 64, 64).double(), torch.randn(2, 3, 64, 64).double()
    joint = _shared_and_head_grads(model, x_depth, x_seg, True, True)
    model.common.split.scales = (1.0, 1.0)
    only_depth = _shared_and_head_grads(model, x_depth, x_seg, True, False)
    only_seg = _shared_and_head_grads(model, x_depth, x_seg, False, True)
    for j, d, s in zip(joint[:2], only_depth[:2], only_seg[:2]):
        assert torch.allclose(j, 0.9 * d + 0.1 * s, rtol=1e-9, atol=1e-12)
        assert not torch.allclose(j, d + s)  # the scales matter
    assert torch.allclose(joint[2], only_depth[2], rtol=1e-9)  # head gradients are not scaled


def test_joint_network_outputs_and_pose_inverse():
    torch.manual_seed(1)
    model = SGDepth().eval()
    frames = {f: torch.randn(1, 3, 64, 96) for f in (0, -1, 1)}
    with torch.no_grad():
        out = JointNetwork(model)(frames, torch.randn(2, 3, 64, 96))
    assert [tuple(d.shape) for d in out.disparities] == [(1, 1, 64 // 2 ** s, 96 // 2 ** s) for s in range(4)]
    assert out.seg_logits.shape == (2, 20, 64, 96)
    assert set(out.poses) == {-1, 1} and out.poses[1].shape == (1, 4, 4)
    with torch.no_grad():
        forward = model.pose(frames[-1], frames[0], invert=False)
    assert torch.allclose(out.poses[-1] @ forward, torch.eye(4)[None], atol=1e-5)


def test_segment_restores_train_mode_and_never_returns_void():
    model = SGDepth(pose_layers=None).train()
    with torch.no_grad():
        model.seg.multires.convs[0].bias[19] = 100.0  # void channel would win the argmax over 20
    labels = segment(model, normalize(torch.rand(1, 3, 64, 64)))
    assert model.training and labels.max() < 19 and labels.shape == (1, 64, 64)


# --------------------------------------------------------------------------------------------------- masking
def test_dynamic_classes_are_person_to_bicycle():
    labels = torch.tensor([[list(range(19)) + [255]]])
    assert dynamic_pixels(labels)[0, 0].nonzero().flatten().tolist() == list(range(11, 19))


def test_dynamic_iou_and_moving_mask_by_hand():
    current = torch.zeros(2, 4, 4, dtype=torch.bool)
    current[0, :2, :2] = True  # image 0: a 2x2 object
    prev = torch.zeros_like(current)
    prev[0, :2, 1:3] = True   # warped neighbour: moved one column → overlap 2 of 6 pixels
    nxt = current.clone()      # other neighbour agrees exactly
    iou = dynamic_iou(current, [prev, nxt])
    assert float(iou[0]) == pytest.approx((2 + 4) / (2 + 4 + 2 + 2 + 0))  # tp 6, fp 2, fn 2
    assert math.isnan(float(iou[1]))  # image 1 has no dynamic pixel
    mask = moving_mask(current, [prev, nxt], iou, threshold=0.7)
    assert mask.shape == (2, 1, 4, 4)
    assert mask[0, 0].sum() == 16 - 6  # union of current and warped objects masked
    assert torch.all(mask[1] == 1)
    assert torch.all(moving_mask(current, [prev, nxt], iou, threshold=0.5) == 1)  # IoU 0.6 ≥ 0.5: static


def test_masking_schedule_follows_the_reference():
    assert [masking_fraction(e, 15, 20, True, 0.1) for e in (15, 16, 17, 18)] == [0.75, 0.5, 0.25, 0.0]
    sched = MaskingSchedule(from_epoch=15, num_epochs=20)
    ious = [i / 10 for i in range(1, 11)]
    for epoch in range(15):
        assert not sched.active(epoch)
        sched.end_epoch(epoch, ious)
        assert sched.threshold == 0.0
    thresholds = []
    for epoch in range(15, 20):
        assert sched.active(epoch)
        sched.start_epoch()
        sched.record(torch.tensor(ious + [math.nan]))
        thresholds.append(sched.threshold)
        sched.end_epoch(epoch)
    assert thresholds[0] == 0.0  # epoch 15 masks nothing, only logs
    assert thresholds[1:] == pytest.approx([np.percentile(ious, p) for p in (75, 50, 25, 0)])
    restored = MaskingSchedule()
    restored.load_state_dict(sched.state_dict())
    assert restored.threshold == sched.threshold and restored.iou_log == sched.iou_log


def test_label_warp_is_nearest():
    labels = torch.tensor([[[1, 2, 3, 4]]])
    grid = torch.tensor([[[[-1.0, -1.0], [-0.4, -1.0], [0.3, -1.0], [1.0, -1.0]]]])  # x = 0, 0.9, 1.95, 3
    assert geometry.warp_labels(labels, grid).tolist() == [[[1, 2, 3, 4]]]
