"""The ROS-free predictor, preprocessing, postprocessing and colour maps."""
import numpy as np
import pytest
import torch

from sgdepth_ros import Predictor
from sgdepth_ros.backends import BackendError
from sgdepth_ros.colorize import colorize_depth, colorize_labels, overlay_labels
from sgdepth_ros.postprocess import disparity_to_depth, resize_labels
from sgdepth_ros.preprocess import ImageFormatError, as_rgb8, normalize, resize_rgb

SMALL = (128, 64)  # network input (width, height) that keeps the tests fast


@pytest.fixture(scope="module")
def torch_predictor(ours_safetensors):
    return Predictor(ours_safetensors, device="cpu", backend="torch", input_size=SMALL)


def test_preprocessing_matches_torchvision_reference_pipeline(rgb):
    """PIL bilinear resize + ToTensor + ImageNet normalisation, as SGDepth's inference/eval loaders."""
    from PIL import Image
    from torchvision import transforms

    ref = transforms.Compose([transforms.Resize((64, 128), interpolation=transforms.InterpolationMode.BILINEAR),
                              transforms.ToTensor(),
                              transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])(Image.fromarray(rgb))
    ours = normalize([resize_rgb(rgb, (128, 64))])[0]
    assert ours.shape == (3, 64, 128) and ours.dtype == np.float32
    assert np.abs(ours - ref.numpy()).max() < 1e-5


def test_predict_network_and_input_resolution(torch_predictor, rgb, model):
    pred = torch_predictor.predict(rgb)
    assert pred.depth.shape == pred.disparity.shape == pred.labels.shape == (64, 128)
    assert pred.depth.dtype == np.float32 and pred.labels.dtype == np.uint8
    assert pred.labels.max() <= 18  # the void channel never reaches the user
    assert np.allclose(pred.depth, 1.0 / (0.01 + 9.99 * pred.disparity), rtol=1e-6)
    assert 0.1 < pred.depth.min() and pred.depth.max() < 100.0
    assert not pred.is_metric
    assert set(pred.timings) == {"preprocess", "forward", "postprocess"}
    assert np.array_equal(pred.image, resize_rgb(rgb, SMALL))
    # same numbers as the network run directly on the normalised image
    x = torch.from_numpy(normalize([resize_rgb(rgb, SMALL)]))
    with torch.no_grad():
        out = model(x)
    assert np.abs(pred.disparity - out.disparities[0][0, 0].numpy()).max() < 1e-6
    assert np.array_equal(pred.labels, out.seg_logits[0, :19].argmax(0).numpy())
    full = torch_predictor.predict(rgb, output_resolution="input")
    assert full.depth.shape == full.labels.shape == rgb.shape[:2] and full.image is not None
    assert np.array_equal(full.image, rgb)


def test_batch_of_different_sizes(torch_predictor, rgb):
    small = rgb[::2, ::2].copy()
    preds = torch_predictor.predict_batch([rgb, small], output_resolution="input")
    assert [p.depth.shape for p in preds] == [rgb.shape[:2], small.shape[:2]]
    single = torch_predictor.predict(rgb, output_resolution="input")
    assert np.allclose(preds[0].depth, single.depth, rtol=1e-5)


def test_openvino_backend_matches_torch(ours_safetensors, torch_predictor, rgb):
    pytest.importorskip("openvino")
    ov = Predictor(ours_safetensors, device="cpu", backend="openvino", input_size=SMALL)
    a, b = ov.predict(rgb), torch_predictor.predict(rgb)
    assert ov.backend.name == "openvino"
    assert np.abs(a.disparity - b.disparity).max() < 1e-4
    assert (a.labels == b.labels).mean() > 0.999
    # the second start reads the cached graph and gives the same result
    again = Predictor(ours_safetensors, device="cpu", backend="openvino", input_size=SMALL).predict(rgb)
    assert np.array_equal(again.labels, a.labels)


def test_scale_factor_gives_metric_depth(ours_safetensors, torch_predictor, rgb):
    metric = Predictor(ours_safetensors, device="cpu", backend="torch", input_size=SMALL, scale_factor=2.5)
    assert metric.is_metric and metric.predict(rgb).is_metric
    assert np.allclose(metric.predict(rgb).depth, 2.5 * torch_predictor.predict(rgb).depth, rtol=1e-6)


def test_depth_only_task(ours_safetensors, rgb):
    p = Predictor(ours_safetensors, device="cpu", backend="torch", input_size=SMALL, tasks=("depth",)).predict(rgb)
    assert p.labels is None and p.depth.shape == (64, 128)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(input_size=(100, 64)), ValueError, "multiples of 32"),
    (dict(device="cuda"), BackendError, "CUDA is not available"),
    (dict(device="tpu"), BackendError, "unknown device"),
    (dict(device="cpu", precision="fp16", backend="torch"), BackendError, "needs a CUDA device"),
    (dict(output_resolution="half"), ValueError, "output_resolution"),
    (dict(tasks=("depth", "normals")), ValueError, "tasks"),
    (dict(scale_factor=-1.0), ValueError, "scale_factor"),
])
def test_bad_settings_are_rejected(ours_safetensors, kwargs, error, match):
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(error, match=match):
        Predictor(ours_safetensors, **kwargs)


def test_image_format_conversions():
    grey = np.full((4, 5), 7, np.uint8)
    assert as_rgb8(grey).shape == (4, 5, 3) and (as_rgb8(grey) == 7).all()
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 3] = 255
    assert as_rgb8(rgba).shape == (4, 5, 3) and as_rgb8(rgba).max() == 0
    u16 = np.full((4, 5, 3), 65535, np.uint16)
    assert as_rgb8(u16).dtype == np.uint8 and (as_rgb8(u16) == 255).all()
    for bad in (np.zeros((4, 5), np.float32), np.zeros((4, 5, 2), np.uint8), np.zeros((0, 5, 3), np.uint8)):
        with pytest.raises(ImageFormatError):
            as_rgb8(bad)


def test_label_resize_equals_nearest_logit_upsampling_then_argmax():
    logits = torch.randn(1, 20, 12, 20)
    labels = logits[0].argmax(0).numpy().astype(np.uint8)
    for out_hw in ((37, 61), (24, 40), (7, 9)):
        ref = torch.nn.functional.interpolate(logits, size=out_hw, mode="nearest")[0].argmax(0).numpy()
        assert np.array_equal(resize_labels(labels, out_hw[::-1]), ref)


def test_disparity_to_depth_bounds():
    d = disparity_to_depth(np.array([0.0, 1.0, 0.5], np.float32))
    assert np.allclose(d, [100.0, 0.1, 1 / (0.01 + 9.99 * 0.5)])


def test_colour_maps():
    labels = np.array([[0, 13], [255, 19]], np.uint8)
    colours = colorize_labels(labels)
    assert colours[0, 0].tolist() == [128, 64, 128] and colours[0, 1].tolist() == [0, 0, 142]
    assert colours[1].max() == 0
    rgb = np.full((2, 2, 3), 200, np.uint8)
    over = overlay_labels(rgb, labels, alpha=0.5)
    assert over[0, 0].tolist() == [164, 132, 164] and over[1, 0].tolist() == [200, 200, 200]
    with pytest.raises(ValueError, match="alpha"):
        overlay_labels(rgb, labels, alpha=1.5)
    depth = np.array([[1.0, 10.0], [np.nan, 0.0]], np.float32)
    dc = colorize_depth(depth, 1.0, 10.0)
    assert dc.shape == (2, 2, 3) and dc[1].max() == 0 and not np.array_equal(dc[0, 0], dc[0, 1])
