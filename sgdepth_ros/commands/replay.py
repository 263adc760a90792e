"""``sgdepth-ros replay BAG``: accuracy, latency and an output bag of a model on a recorded drive.

    sgdepth-ros replay drive_bag/ --model model.pth --out replay_out/                  # offline, every frame
    sgdepth-ros replay drive_bag/ --mode live --rate 2 --use-sim-time --out live_out/  # through the node process
    sgdepth-ros replay drive_bag/ --scale-mode camera_height --out height_out/        # metres from the camera height

Depth is scored with per-image median scaling, with the fixed scale (``--scale-factor`` or the checkpoint's) and, with
``--scale-mode camera_height``, with the scale measured from the camera's height above the road plane
(``--camera-height``, else the bag's ``/tf_static``: see :mod:`sgdepth_ros.replay.tf_height`); the report then also
has the per-frame scale estimate, filtered scale, the ground truth's scale and their errors.

Writes into ``--out``: ``<bag>_replay/`` (MCAP bag: the inputs, the ground truth and every node output),
``report.json``, ``report.md``, plots and ``preview.png``. Exit 0 on a complete run; 1 when the bag could only be
read in part, the node failed or no frame was evaluated (an image topic whose messages cannot be read, a node that
delivered nothing; the report then holds what was done and why); 2 for bad arguments or topics (an image topic
without messages included).

Live mode runs on the caller's ``ROS_DOMAIN_ID`` when it is set, else on a free domain it picks (the report names it),
always with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
from itertools import islice
from pathlib import Path

import numpy as np

from .arg_types import count, positive_float

MODES = ("offline", "live")
SCALE_MODES = ("auto", "camera_height")
REPORT_FILES = ("report.json", "report.md", "preview.png", "error_vs_distance.png", "latency.png",
                "per_class_iou.png", "camera_height_scale.png")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bag", help="rosbag2 bag: a folder with metadata.yaml, or a .mcap / .db3 file")
    p.add_argument("--model", default=None, help="checkpoint (.safetensors or SGDepth model.pth); default: the "
                                                 "shipped synthetic-world model")
    p.add_argument("--mode", choices=MODES, default="offline",
                   help="offline: every frame through the predictor here; live: play the bag to the node process")
    p.add_argument("--out", default="replay_output", help="output folder (default: replay_output)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier replay's files in --out")
    topics = p.add_argument_group("topics (found by type and name when not given; 'none' switches ground truth off)")
    topics.add_argument("--image", help="camera topic (sensor_msgs/Image or CompressedImage)")
    topics.add_argument("--camera-info", help="CameraInfo topic")
    topics.add_argument("--depth-gt", help="dense depth ground truth (Image 32FC1 metres or 16UC1 mm)")
    topics.add_argument("--semantic-gt", help="label ground truth (Image mono8, Cityscapes trainIds)")
    topics.add_argument("--lidar", help="LiDAR PointCloud2 used as depth ground truth")
    topics.add_argument("--lidar-transform", help="camera←lidar transform: 'x y z qx qy qz qw', 'x y z roll pitch "
                                                  "yaw', 16 numbers, or a .yaml/.json file")
    topics.add_argument("--lidar-tolerance", type=positive_float, default=0.05,
                        help="largest |cloud stamp − image stamp| in seconds (default 0.05)")
    ev = p.add_argument_group("evaluation")
    ev.add_argument("--protocol", choices=("capped", "eigen", "kitti"), default="capped",
                    help="capped: min < gt < max depth (default); eigen: + Garg crop (KITTI); kitti: gt > 0")
    ev.add_argument("--min-depth", type=positive_float, default=1e-3, help="evaluated depth range in m (1e-3)")
    ev.add_argument("--max-depth", type=positive_float, default=80.0, help="(80)")
    ev.add_argument("--scale-factor", type=positive_float, default=None,
                    help="metres per model unit (default: the checkpoint's, else median scaling only)")
    ev.add_argument("--scale-mode", choices=SCALE_MODES, default="auto",
                    help="auto (default): the outputs carry the fixed scale (--scale-factor or the checkpoint's); "
                         "camera_height: measured per frame from the camera height over the road plane, a third "
                         "scoring row")
    ev.add_argument("--camera-height", type=positive_float, default=None,
                    help="camera_height: metres from the camera down to the road (default: from the bag's "
                         "/tf_static, ground frame → the image's frame_id)")
    ev.add_argument("--ground-frame", action="append", default=None, metavar="FRAME",
                    help="camera_height from TF: the ground frame (repeatable, first found wins; default "
                         "base_footprint, then base_link)")
    ev.add_argument("--max-frames", type=count, default=None, help="stop after this many frames")
    ev.add_argument("--previews", type=int, default=4, help="frames in preview.png (0 = none)")
    run = p.add_argument_group("running")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--backend", default="auto", choices=("auto", "torch", "openvino"), help="offline backend")
    run.add_argument("--rate", type=positive_float, default=1.0, help="live: multiple of the bag's pace (1.0)")
    run.add_argument("--use-sim-time", action="store_true", help="live: publish /clock, run the node on bag time")
    run.add_argument("--drain", type=positive_float, default=10.0,
                     help="live: seconds to wait for outputs after the last frame")
    run.add_argument("--node-param", action="append", default=[], metavar="NAME=VALUE",
                     help="live: extra node parameter (repeatable), e.g. input_qos_reliability=best_effort")
    run.add_argument("--no-bag", action="store_true", help="do not write the output bag")
    run.add_argument("--bag-storage", choices=("mcap", "sqlite3"), default="mcap", help="output bag storage")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _node_params(items: list[str]) -> dict:
    params = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--node-param needs NAME=VALUE, got {item!r}")
        value: object = text
        for convert in (int, float):
            try:
                value = convert(text)
                break
            except ValueError:
                continue
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        params[name] = value
    return params


def _prepare_out(out: Path, bag_name: str, overwrite: bool) -> Path:
    """The output folder, checked: an earlier replay's files are only replaced with ``overwrite``."""
    out.mkdir(parents=True, exist_ok=True)
    bag_path = out / bag_name
    existing = [out / f for f in REPORT_FILES if (out / f).exists()] + ([bag_path] if bag_path.exists() else [])
    if existing and not overwrite:
        raise FileExistsError(f"{out} already holds a replay ({', '.join(p.name for p in existing)}); "
                              f"use --overwrite or another --out")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return bag_path


def _camera_height(args: argparse.Namespace, image_topic: str) -> tuple[float | None, str | None]:
    """(metres, where they came from) for ``--scale-mode camera_height``; (None, None) otherwise.

    ``--camera-height`` when given, else the bag's ``/tf_static`` from the ground frame to the first image's
    frame_id. Raises ValueError with what to set when neither gives a height.
    """
    from ..bag.reader import read_messages
    from ..replay.tf_height import GROUND_FRAMES, camera_height_from_bag

    if args.scale_mode != "camera_height":
        if args.camera_height is not None or args.ground_frame:
            raise ValueError("--camera-height and --ground-frame are used only with --scale-mode camera_height")
        return None, None
    if args.camera_height is not None:
        return args.camera_height, "--camera-height"
    first = next(iter(read_messages(args.bag, [image_topic])), None)
    frame_id = str(first.msg.header.frame_id) if first is not None else ""
    if not frame_id:
        raise ValueError(f"{args.bag}: the images on {image_topic} name no frame_id, so the camera height cannot "
                         f"be read from TF; give --camera-height")
    height = camera_height_from_bag(args.bag, frame_id, tuple(args.ground_frame or GROUND_FRAMES))
    return height.height_m, height.describe()


def _percentiles(samples: list[float], what: str) -> dict | None:
    if not samples:
        return None
    a = np.asarray(samples, np.float64)
    return {"what": what, "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean()), "max": float(a.max()), "count": int(a.size), "samples": [float(v) for v in a]}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..bag import BagWriter
    from ..default_model import default_model_path
    from ..model import read_metadata
    from ..scale import CameraHeightScale, resolve_scale
    from .helpers import machine_description
    from ..replay.evaluate import EvalSettings, ReplayEvaluator
    from ..replay.frames import FrameReader
    from ..replay.lidar import parse_transform
    from ..replay.recorder import FrameRecorder
    from ..replay.report import write_report
    from ..replay.topics import COMPRESSED, TopicError, describe, list_topics, resolve_topics
    from ..ros.messages import output_topics

    if args.previews < 0:
        return _fail(f"--previews must be ≥ 0, got {args.previews}")
    if not args.min_depth < args.max_depth:
        return _fail(f"--min-depth ({args.min_depth}) must be below --max-depth ({args.max_depth})")
    model = Path(args.model) if args.model else default_model_path()
    if model is None:
        return _fail("no --model given and the default model file is not in this installation")
    if not model.is_file():
        return _fail(f"model {model} does not exist")
    try:
        node_params = _node_params(args.node_param)
        bag_topics = list_topics(args.bag)
        topics = resolve_topics(bag_topics, image=args.image, camera_info=args.camera_info,
                                depth_gt=args.depth_gt, semantic_gt=args.semantic_gt, lidar=args.lidar,
                                bag=args.bag)
    except (TopicError, ValueError, FileNotFoundError) as error:
        return _fail(str(error))
    camera_from_lidar = None
    if topics.lidar:
        if not args.lidar_transform:
            return _fail(f"LiDAR ground truth {topics.lidar} needs --lidar-transform (camera←lidar); or pass "
                         f"--lidar none")
        try:
            camera_from_lidar = parse_transform(args.lidar_transform)
        except ValueError as error:
            return _fail(str(error))
        if not topics.camera_info:
            return _fail("LiDAR ground truth needs a CameraInfo topic (--camera-info)")
    image_topic = next(t for t in bag_topics if t.name == topics.image)
    image_count = image_topic.count
    if image_count == 0:
        return _fail(f"{args.bag}: the image topic {topics.image} has no messages: nothing to replay. The bag has:\n"
                     f"{describe(bag_topics)}")
    total = min(image_count, args.max_frames or image_count)
    try:
        camera_height, height_source = _camera_height(args, topics.image)
    except ValueError as error:
        return _fail(str(error))
    by_height = camera_height is not None
    if by_height and not topics.camera_info:
        return _fail(f"--scale-mode camera_height needs the camera's intrinsics: {args.bag} has no CameraInfo "
                     f"topic for {topics.image} (name one with --camera-info)")

    # metres per model unit, by the one rule of every entry point (sgdepth_ros.scale, mode auto); None = relative.
    # With camera_height the outputs carry the measured scale and this factor only makes the "fixed" row.
    scale = resolve_scale("auto", args.scale_factor, read_metadata(model), str(model)).factor()
    out = Path(args.out)
    bag_out = _prepare_out(out, f"{Path(args.bag).name.removesuffix('.mcap').removesuffix('.db3')}_replay",
                           args.overwrite)
    namespace = "/sgdepth"

    def full_topics(metric: bool) -> dict:
        keys = output_topics(metric)
        if not topics.camera_info:
            keys = {k: v for k, v in keys.items() if k not in ("depth_info", "points")}
        return {key: (f"{namespace}/{topic}", f"sensor_msgs/msg/{kind.__name__}") for key, (topic, kind) in
                keys.items()}

    full = full_topics(by_height or bool(scale))
    relative = full_topics(False) if by_height else None  # frames before the first camera-height scale
    evaluator = ReplayEvaluator(EvalSettings(args.protocol, args.min_depth, args.max_depth, scale,
                                             bool(scale) and not by_height, camera_height_m=camera_height,
                                             camera_height_source=height_source))
    previews = set(np.linspace(0, total - 1, args.previews).round().astype(int).tolist()) if args.previews else set()
    reader = FrameReader(args.bag, topics, camera_from_lidar, lidar_tolerance_s=args.lidar_tolerance)
    writer = None if args.no_bag else BagWriter(bag_out, storage=args.bag_storage)
    recorder = FrameRecorder(evaluator, full, writer, previews,
                             {"image": topics.image, "camera_info": topics.camera_info}, relative)
    errors: list[str] = []
    result: dict = {"sent": 0, "latency_ms": [], "wall_s": 0.0}
    description = ""
    domain = None  # live: (ROS_DOMAIN_ID, "ROS_DOMAIN_ID" | "free")
    bar = tqdm(total=total, unit="frame", desc=f"replay {args.mode}", dynamic_ncols=True,
               disable=not sys.stderr.isatty())
    try:
        frames = islice(reader, args.max_frames) if args.max_frames else reader
        if args.mode == "offline":
            from ..predictor import Predictor
            from ..replay.offline import run_offline

            predictor = Predictor(model, device=args.device, backend=args.backend, output_resolution="input",
                                  scale_mode="camera_height" if by_height else "auto",
                                  scale_factor=None if by_height else scale, camera_height=camera_height)
            if by_height:  # the same source, labelled with where its height came from
                predictor.scale = CameraHeightScale(camera_height, source=height_source.split(":")[0])
            result = run_offline(frames, predictor, recorder, bar)
            description = predictor.describe()  # after the run: a measured scale says where it ended
        else:
            from ..replay.live import LiveReplay, LiveSettings

            settings = LiveSettings(str(model.resolve()), args.rate, args.use_sim_time, namespace, bool(scale),
                                    args.scale_factor, args.device, node_params, args.drain,
                                    camera_height=camera_height)
            strip = len(namespace) + 1
            with LiveReplay(settings, {k: t[strip:] for k, (t, _) in full.items()}, topics.image,
                            topics.camera_info, compressed=image_topic.msgtype == COMPRESSED,
                            relative_topics={k: t[strip:] for k, (t, _) in (relative or {}).items()
                                             if t != full[k][0]}) as live:
                domain = (live.domain_id, live.domain_source)
                result = live.play(frames, recorder, bar)
            description = _node_model_line(live.node_output) or str(model)
            if not result["node_alive"]:
                errors.append("sgdepth_node exited during the replay")
    except Exception as error:  # keep what was done: the report says what failed
        errors.append(f"{type(error).__name__}: {error}")
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    errors = reader.errors + errors
    sent = result.get("sent", recorder.delivered)
    delivered = recorder.delivered
    nothing = _nothing_evaluated(sent, delivered, topics.image, image_count, reader)
    if nothing and not errors:  # with another error, that error is the reason
        errors.append(nothing)
    node = result.get("node") or None
    if node and not args.use_sim_time:  # the node's clock is wall time, the stamps are the bag's
        node = {k: v for k, v in node.items() if not k.startswith("latency_")}
        node["latency_note"] = "stamp→publish latency needs --use-sim-time (bag stamps vs wall clock)"
    summary = {
        "bag": str(args.bag), "mode": args.mode, "model": str(model), "model_description": description,
        "command": _command_line(args, model), "machine": machine_description(),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {"rate": args.rate if args.mode == "live" else None,
                     "use_sim_time": args.use_sim_time if args.mode == "live" else None,
                     "protocol": args.protocol, "min_depth_eval": args.min_depth, "max_depth_eval": args.max_depth,
                     "scale_factor": scale, "scale_mode": args.scale_mode, "camera_height_m": camera_height,
                     "camera_height_source": height_source, "output_resolution": "input", "namespace": namespace,
                     "node_params": node_params or None,
                     "ros_domain_id": domain[0] if domain else None,
                     "ros_domain_id_source": domain[1] if domain else None},
        "topics": topics.as_dict(),
        "frames": {"in_bag": image_count, "sent": sent, "delivered": delivered,
                   "dropped": sent - delivered, "incomplete": result.get("incomplete"),
                   "scale_unpaired": result.get("scale_unpaired") if by_height else None,
                   "dropped_by_node": _int(node, "frames_dropped"),
                   "lost": (sent - delivered - _int(node, "frames_dropped")) if _int(node, "frames_dropped")
                   is not None else None,
                   "evaluated_depth": evaluator.evaluated_depth, "evaluated_semantic": evaluator.evaluated_semantic,
                   "without_ground_truth": recorder.without_ground_truth,
                   "unreadable": sum(reader.unreadable.values()), "unreadable_kinds": dict(reader.unreadable)},
        **evaluator.summary(),
        "latency_ms": _percentiles(result["latency_ms"], "send → last output arrival, wall clock (live)"
                                   if args.mode == "live" else "predictor time per frame, in process (offline)"),
        "latency_depth_ms": _percentiles(result.get("depth_latency_ms", []), "send → depth arrival (live)"),
        "node": node,
        "throughput_fps": delivered / result["wall_s"] if result["wall_s"] else 0.0,
        "wall_s": result["wall_s"],
        "errors": errors, "complete": not errors,
        "per_frame": recorder.per_frame,
        "outputs": {"bag": None if args.no_bag else str(bag_out)},
    }
    summary["outputs"] = write_report(summary, out, recorder.previews)
    _print_summary(summary, out)
    return 1 if errors else 0


def _nothing_evaluated(sent: int, delivered: int, image_topic: str, listed: int, reader) -> str | None:
    """Why no frame was evaluated (an error of the run), or None when some were."""
    if delivered:
        return None
    if sent:
        return f"the node delivered none of the {sent} frames sent (depth and labels of a frame never both arrived)"
    unreadable = dict(reader.unreadable)
    if unreadable:
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(unreadable.items()))
        return f"no image on {image_topic} could be decoded ({kinds}): 0 frames evaluated"
    return (f"no message of {image_topic} could be read although the bag's index lists {listed}: its metadata.yaml "
            f"does not match its storage files ({reader.messages} messages read on the replayed topics)")


def _command_line(args: argparse.Namespace, model: Path) -> str:
    """The replay's main settings as a command line (for the report)."""
    parts = ["sgdepth-ros", "replay", args.bag, "--model", str(model), "--mode", args.mode, "--out", args.out]
    if args.mode == "live":
        parts += ["--rate", f"{args.rate:g}"] + (["--use-sim-time"] if args.use_sim_time else [])
    if args.scale_mode != "auto":
        parts += ["--scale-mode", args.scale_mode]
    if args.camera_height is not None:
        parts += ["--camera-height", f"{args.camera_height:g}"]
    if args.max_frames:
        parts += ["--max-frames", str(args.max_frames)]
    return " ".join(shlex.quote(p) for p in parts)


def _int(node: dict | None, key: str) -> int | None:
    try:
        return int(float(node[key])) if node and key in node else None
    except ValueError:
        return None


def _node_model_line(output: str) -> str:
    """The node's "model ready: …" description from its log, with its "scale (applied per frame by the node): …"
    line when it measures the scale itself (its predictor then gives model units)."""
    parts = []
    for marker in ("model ready: ", "scale (applied per frame by the node): "):
        for line in output.splitlines():
            if marker in line:
                parts.append(line.split(marker, 1)[1].strip())
                break
    return "; scale applied by the node: ".join(parts)


def _print_summary(summary: dict, out: Path) -> None:
    f = summary["frames"]
    print(f"replay ({summary['mode']}) of {summary['bag']}: {f['delivered']} of {f['sent']} frames delivered"
          + (f", {f['dropped']} dropped" if f["dropped"] else ""))
    settings = summary["settings"]
    if settings.get("ros_domain_id") is not None:
        origin = "from ROS_DOMAIN_ID" if settings["ros_domain_id_source"] == "ROS_DOMAIN_ID" else "a free one, picked"
        print(f"  ROS domain {settings['ros_domain_id']} ({origin})")
    depth = summary["depth"]
    if depth:
        m = depth["median"]["metrics"]
        line = f"  depth ({depth['ground_truth']}, {depth['frames']} frames): AbsRel {m['abs_rel']:.3f}, " \
               f"δ<1.25 {m['a1']:.3f} (median scaling)"
        if depth["fixed"]:
            line += f"; AbsRel {depth['fixed']['metrics']['abs_rel']:.3f} with the scale ×{depth['fixed']['scale']:g}"
        print(line)
    height = summary.get("camera_height")
    if height:
        error = height["scale_error"]
        line = (f"  camera height {height['height_m']:g} m ({height['height_source']}): a scale on "
                f"{height['frames_with_scale']} of {height['frames']} frames")
        if error["count"]:
            line += (f"; scale error median {100 * error['median_abs']:.1f} %, p95 {100 * error['p95_abs']:.1f} %, "
                     f"jitter {100 * (height['jitter'] or 0):.2f} %")
        if height["metrics"]:
            line += f"; AbsRel {height['metrics']['abs_rel']:.3f}"
        print(line)
    if summary["segmentation"]:
        print(f"  segmentation: mIoU {100 * summary['segmentation']['miou']:.1f} %")
    if summary["latency_ms"]:
        lat = summary["latency_ms"]
        print(f"  latency ({lat['what']}): p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms; "
              f"{summary['throughput_fps']:.1f} frames/s")
    for error in summary["errors"]:
        if f["delivered"]:
            print(f"  PARTIAL: {error}")
        else:
            print(f"error: {error}", file=sys.stderr)
    outputs = summary["outputs"]
    print(f"  report: {outputs.get('report_md')}" + (f", preview: {outputs['preview']}" if outputs.get("preview")
                                                     else ""))
    if outputs.get("bag"):
        print(f"  output bag: {outputs['bag']}  (ros2 bag play it; rviz: config/sgdepth.rviz)")
