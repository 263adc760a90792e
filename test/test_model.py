"""Architecture and state_dict layout against the reference (sgdepth_spec.md §1–2)."""
import pytest
import torch

from sgdepth_ros.model import SGDepth
from conftest import randomized_model


def test_default_state_dict_layout_matches_reference():
    sd = SGDepth().state_dict()
    keys = list(sd)
    assert len(keys) == 296
    assert sum(p.numel() for p in SGDepth().parameters()) == 28_801_742
    groups = [("common.encoder.", 120), ("common.decoder.", 2), ("depth.decoder.", 18), ("depth.multires.", 8),
              ("seg.decoder.", 18), ("seg.multires.", 2), ("pose.encoder.", 120), ("pose.decoder.", 8)]
    start = 0
    for prefix, count in groups:  # the reference order, group by group
        assert all(k.startswith(prefix) for k in keys[start:start + count]), prefix
        start += count
    assert not any(".fc." in k for k in keys)
    shapes = {
        "common.encoder.encoder.conv1.weight": (64, 3, 7, 7),
        "pose.encoder.encoder.conv1.weight": (64, 6, 7, 7),
        "common.decoder.blocks.step_0.conv.weight": (256, 512, 3, 3),
        "depth.decoder.blocks.step_1.conv.weight": (256, 512, 3, 3),
        "seg.decoder.blocks.step_7.conv.weight": (32, 96, 3, 3),
        "depth.decoder.blocks.step_9.conv.weight": (16, 16, 3, 3),
        "depth.multires.convs.0.weight": (1, 16, 3, 3),
        "depth.multires.convs.3.weight": (1, 128, 3, 3),
        "seg.multires.convs.0.weight": (20, 16, 3, 3),
        "pose.decoder.squeeze.weight": (256, 512, 1, 1),
        "pose.decoder.conv_3.weight": (6, 256, 1, 1),
        "common.encoder.encoder.layer4.0.downsample.0.weight": (512, 256, 1, 1),
        "common.encoder.encoder.bn1.num_batches_tracked": (),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    # depth biases start at +5 (sigmoid ≈ 0.993), the pose output conv is scaled by 0.01
    assert (sd["depth.multires.convs.0.bias"] > 4).all()
    assert sd["pose.decoder.conv_3.weight"].abs().max() < 0.01


def test_resnet50_split2_two_scales_layout():
    m = SGDepth(num_layers=50, split_pos=2, depth_scales=2, pose_layers=18)
    sd = m.state_dict()
    assert sorted(k for k in sd if k.startswith("common.decoder")) == [
        f"common.decoder.blocks.step_{i}.conv.{p}" for i in range(3) for p in ("bias", "weight")]
    assert tuple(sd["common.decoder.blocks.step_0.conv.weight"].shape) == (256, 2048, 3, 3)
    assert tuple(sd["common.decoder.blocks.step_1.conv.weight"].shape) == (256, 256 + 1024, 3, 3)
    assert tuple(sd["depth.decoder.blocks.step_3.conv.weight"].shape) == (128, 128 + 512, 3, 3)
    assert tuple(sd["seg.decoder.blocks.step_7.conv.weight"].shape) == (32, 32 + 64, 3, 3)
    assert sorted(k for k in sd if k.startswith("depth.multires")) == [
        "depth.multires.convs.0.bias", "depth.multires.convs.0.weight",
        "depth.multires.convs.1.bias", "depth.multires.convs.1.weight"]
    assert "depth.decoder.blocks.step_2.conv.weight" not in sd


@pytest.mark.parametrize("split_pos,shared", [(0, 0), (1, 1), (2, 3), (3, 5), (4, 7)])
def test_split_positions_share_the_documented_steps(split_pos, shared):
    sd = SGDepth(split_pos=split_pos, pose_layers=None).state_dict()
    assert len({k.split(".")[3] for k in sd if k.startswith("common.decoder.")}) == shared
    assert len({k.split(".")[3] for k in sd if k.startswith("seg.decoder.")}) == 10 - shared


def test_output_shapes_and_ranges(model):
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        out = model(x)
    assert [tuple(d.shape) for d in out.disparities] == [(2, 1, 64, 128), (2, 1, 32, 64), (2, 1, 16, 32), (2, 1, 8, 16)]
    assert all(((d > 0) & (d < 1)).all() for d in out.disparities)
    assert tuple(out.seg_logits.shape) == (2, 20, 64, 128)


def test_single_task_calls_skip_the_other_tail(model):
    x = torch.randn(1, 3, 64, 64)
    calls = []
    hooks = [model.seg.register_forward_hook(lambda *a: calls.append("seg")),
             model.depth.register_forward_hook(lambda *a: calls.append("depth"))]
    try:
        with torch.no_grad():
            d = model(x, tasks=("depth",))
            s = model(x, tasks=("segmentation",))
            both = model(x)
    finally:
        for h in hooks:
            h.remove()
    assert calls == ["depth", "seg", "depth", "seg"]
    assert d.seg_logits is None and s.disparities is None
    assert torch.equal(d.disparities[0], both.disparities[0]) and torch.equal(s.seg_logits, both.seg_logits)


@pytest.mark.parametrize("shape", [(1, 3, 100, 128), (1, 3, 64, 100), (1, 4, 64, 64), (3, 64, 64)])
def test_invalid_input_sizes_are_rejected(model, shape):
    with pytest.raises(ValueError, match="multiples of 32|shape"):
        model(torch.zeros(shape))


def test_pose_outputs_and_inverse(model):
    torch.manual_seed(1)
    a, b = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fwd = model.pose(a, b)
        inv = model.pose(a, b, invert=True)
        zero = model.pose(a, a)
    assert fwd.shape == (2, 4, 4)
    assert torch.equal(fwd[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(2, 4))
    assert torch.allclose(inv @ fwd, torch.eye(4).expand(2, 4, 4), atol=1e-5)
    rot = fwd[:, :3, :3]
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert zero.shape == (2, 4, 4)


def test_zero_pose_vector_is_identity():
    from sgdepth_ros.model.heads import pose_vector_to_matrix
    eye = pose_vector_to_matrix(torch.zeros(1, 3), torch.zeros(1, 3))
    assert torch.equal(eye, torch.eye(4)[None])


def test_shared_gradients_are_scaled_0_9_and_0_1():
    """∂L/∂θ_shared = 0.9·∂L_depth/∂θ + 0.1·∂L_seg/∂θ; head gradients are unscaled."""
    m = randomized_model(1, pose_layers=None).double()  # float64: compare without rounding noise
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    shared = m.common.encoder.encoder.conv1.weight
    head = m.depth.multires.convs[0].weight

    def grads(scales, use_depth, use_seg):
        m.zero_grad()
        m.common.split.scales = scales
        out = m(x)
        loss = use_depth * out.disparities[0].pow(2).sum() + use_seg * out.seg_logits.sin().sum()
        loss.backward()
        return shared.grad.clone(), head.grad.clone() if head.grad is not None else None

    g_depth, h_depth = grads((1.0, 1.0), 1, 0)
    g_seg, _ = grads((1.0, 1.0), 0, 1)
    g_joint, h_joint = grads((0.9, 0.1), 1, 1)
    assert torch.allclose(g_joint, 0.9 * g_depth + 0.1 * g_seg, rtol=1e-9, atol=1e-12)
    assert not torch.allclose(g_joint, g_depth + g_seg, rtol=1e-3)
    assert torch.allclose(h_joint, h_depth)
