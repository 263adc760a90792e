"""``sgdepth-ros replay BAG``: accuracy, latency and an output bag of a model on a recorded drive.

    sgdepth-ros replay drive_bag/ --model model.pth --out replay_out/                  # offline, every frame
    sgdepth-ros replay drive_bag/ --mode live --rate 2 --use-sim-time --out live_out/  # through the node process
    sgdepth-ros replay drive_bag/ --scale-mode camera_height --out height_out/        # metres from the camera height
    sgdepth-ros replay rig_bag/ --cameras front,left,right,rear --out rig_out/         # several cameras (or: all)

Depth is scored with per-image median scaling, with the fixed scale (``--scale-factor`` or the checkpoint's) and, with
``--scale-mode camera_height``, with the scale measured from the camera's height above the road plane
(``--camera-height``, else the bag's ``/tf_static``: see :mod:`sgdepth_ros.replay.tf_height`); the report then also
has the per-frame scale estimate, filtered scale, the ground truth's scale and their errors.

Several cameras (``--cameras``, :mod:`sgdepth_ros.replay.rig`): one predictor (offline) or one node process with
``cameras: [..]`` (live), all cameras' frames in bag-time order; each camera is scored, timed and counted on its own
(its outputs under ``/sgdepth/<camera>/``), and overall with every frame of every camera pooled
(:mod:`sgdepth_ros.replay.rig_report` has the report's layout). ``--max-frames`` applies per camera.

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
    topics.add_argument("--cameras", metavar="NAMES", help="several cameras: comma-separated names (front,left) or "
                        "'all'; camera NAME's topics are found under /NAME/ (image_raw[/compressed], camera_info, "
                        "ground_truth/depth, ground_truth/semantic); scored per camera and overall")
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


def _resolve(args: argparse.Namespace, bag_topics: list) -> dict:
    """camera name → its topics: ``{None: topics}`` for one camera, one entry per camera with ``--cameras``."""
    from ..replay.rig import resolve_rig, rig_hint
    from ..replay.topics import TopicError, resolve_topics

    if args.cameras:
        given = [f"--{name.replace('_', '-')}" for name in ("image", "camera_info", "depth_gt", "semantic_gt", "lidar",
                                                            "lidar_transform") if getattr(args, name)]
        if given:
            raise ValueError(f"{', '.join(given)} name(s) one camera's topics: with --cameras each camera's topics are "
                             f"found under /<camera>/ (LiDAR ground truth is single-camera only)")
        return resolve_rig(bag_topics, args.cameras, bag=args.bag)
    try:
        return {None: resolve_topics(bag_topics, image=args.image, camera_info=args.camera_info,
                                     depth_gt=args.depth_gt, semantic_gt=args.semantic_gt, lidar=args.lidar,
                                     bag=args.bag)}
    except TopicError as error:
        hint = "" if args.image else rig_hint(bag_topics)
        raise TopicError(f"{error}\n{hint}" if hint else str(error)) from None


def _camera_checks(args: argparse.Namespace, bag_topics: list, rig: dict) -> dict:
    """camera → (its image topic's BagTopic, camera height or None, where the height came from); raises ValueError
    for a camera without images, or without what scale_mode camera_height needs."""
    from ..replay.topics import describe

    by_name = {t.name: t for t in bag_topics}
    checked = {}
    for name, topics in rig.items():
        label = (lambda text: f"camera {name}: {text}") if name else (lambda text: text)
        image = by_name[topics.image]
        if image.count == 0:
            raise ValueError(label(f"{args.bag}: the image topic {topics.image} has no messages: nothing to replay. "
                                   f"The bag has:\n{describe(bag_topics)}"))
        try:
            height, source = _camera_height(args, topics.image)
        except ValueError as error:
            raise ValueError(label(str(error))) from None
        if height is not None and not topics.camera_info:
            raise ValueError(label(f"--scale-mode camera_height needs the camera's intrinsics: {args.bag} has no "
                                   f"CameraInfo topic for {topics.image} (name one with --camera-info)"))
        checked[name] = (image, height, source)
    return checked


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..bag import BagWriter
    from ..default_model import default_model_path
    from ..model import read_metadata
    from ..scale import resolve_scale
    from ..replay.channel import Channel, output_table
    from ..replay.evaluate import EvalSettings, ReplayEvaluator
    from ..replay.frames import FrameReader
    from ..replay.lidar import parse_transform
    from ..replay.recorder import FrameRecorder
    from ..replay.rig import merged_frames
    from ..replay.runner import run_live_channels, run_offline_channels
    from ..replay.topics import COMPRESSED, TopicError, list_topics

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
        rig = _resolve(args, bag_topics)
    except (TopicError, ValueError, FileNotFoundError) as error:
        return _fail(str(error))
    camera_from_lidar = None
    lidar = rig[None].lidar if None in rig else None
    if lidar:
        if not args.lidar_transform:
            return _fail(f"LiDAR ground truth {lidar} needs --lidar-transform (camera←lidar); or pass --lidar none")
        try:
            camera_from_lidar = parse_transform(args.lidar_transform)
        except ValueError as error:
            return _fail(str(error))
        if not rig[None].camera_info:
            return _fail("LiDAR ground truth needs a CameraInfo topic (--camera-info)")
    try:
        checked = _camera_checks(args, bag_topics, rig)
    except ValueError as error:
        return _fail(str(error))
    by_height = any(height is not None for _, height, _ in checked.values())

    # metres per model unit, by the one rule of every entry point (sgdepth_ros.scale, mode auto); None = relative.
    # With camera_height the outputs carry the measured scale and this factor only makes the "fixed" row.
    scale = resolve_scale("auto", args.scale_factor, read_metadata(model), str(model)).factor()
    out = Path(args.out)
    bag_out = _prepare_out(out, f"{Path(args.bag).name.removesuffix('.mcap').removesuffix('.db3')}_replay",
                           args.overwrite)
    namespace = "/sgdepth"

    def eval_settings(height: float | None, source: str | None) -> EvalSettings:
        return EvalSettings(args.protocol, args.min_depth, args.max_depth, scale, bool(scale) and not by_height,
                            camera_height_m=height, camera_height_source=source)

    pooled = None  # several cameras: the evaluator of all cameras together
    if None not in rig:
        pooled = ReplayEvaluator(eval_settings(None, "each camera's own (see Cameras)" if by_height else None))
    writer = None if args.no_bag else BagWriter(bag_out, storage=args.bag_storage)
    channels: dict = {}
    per_camera_previews = max(1, args.previews // len(rig)) if args.previews else 0
    for name, topics in rig.items():
        image, height, source = checked[name]
        total = min(image.count, args.max_frames or image.count)
        prefix = namespace if name is None else f"{namespace}/{name}"
        full = output_table(prefix, by_height or bool(scale), bool(topics.camera_info))
        relative = output_table(prefix, False, bool(topics.camera_info)) if by_height else None  # before a scale
        evaluator = ReplayEvaluator(eval_settings(height, source))
        previews = set(np.linspace(0, total - 1, per_camera_previews).round().astype(int).tolist())
        channels[name] = Channel(
            name, topics, image.count, image.msgtype == COMPRESSED, height, source, full, relative,
            FrameReader(args.bag, topics, camera_from_lidar, lidar_tolerance_s=args.lidar_tolerance), evaluator,
            FrameRecorder(evaluator, full, writer, previews, {"image": topics.image, "camera_info": topics.camera_info},
                          relative, pooled))
    streams = {name: islice(c.reader, args.max_frames) if args.max_frames else c.reader
               for name, c in channels.items()}
    frames = merged_frames(streams)
    errors: list[str] = []
    results: dict = {}
    wall_s, description, domain = 0.0, "", None  # domain, live: (ROS_DOMAIN_ID, "ROS_DOMAIN_ID" | "free")
    bar = tqdm(total=sum(min(c.in_bag, args.max_frames or c.in_bag) for c in channels.values()), unit="frame",
               desc=f"replay {args.mode}", dynamic_ncols=True, disable=not sys.stderr.isatty())
    try:
        if args.mode == "offline":
            results, wall_s, description = run_offline_channels(channels, frames, model, args.device, args.backend,
                                                                scale, bar)
        else:
            from ..replay.live import LiveSettings

            live_settings = LiveSettings(str(model.resolve()), args.rate, args.use_sim_time, namespace,
                                         bool(scale), args.scale_factor, args.device, node_params, args.drain,
                                         camera_height=next(iter(channels.values())).camera_height)
            results, wall_s, description, domain, alive = run_live_channels(channels, frames, live_settings, bar)
            if not alive:
                errors.append("sgdepth_node exited during the replay")
    except Exception as error:  # keep what was done: the report says what failed
        errors.append(f"{type(error).__name__}: {error}")
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    summary = _summary(args, model, description, channels, results, wall_s, errors, domain, node_params, scale,
                       pooled, bag_out)
    _print_summary(summary, out)
    return 1 if summary["errors"] else 0


def _summary(args: argparse.Namespace, model: Path, description: str, channels: dict, results: dict, wall_s: float,
             errors: list[str], domain, node_params: dict, scale: float | None, pooled, bag_out: Path) -> dict:
    """The report (one camera: today's layout; several: the overall sections, ``cameras`` and ``pooling``, see
    :mod:`sgdepth_ros.replay.rig_report`), written to ``--out``."""
    from ..replay.channel import camera_summary, node_counters, nothing_evaluated, percentiles, LATENCY_WHAT
    from ..replay.report import write_report
    from ..replay.rig_report import POOLING, overall_frames, pooled_sections
    from .helpers import machine_description

    by_height = any(c.camera_height is not None for c in channels.values())
    errors = [c.label(e) for c in channels.values() for e in c.reader.errors] + errors
    failed = bool(errors)  # then that error is the reason a camera evaluated nothing
    parts = {}
    for name, c in channels.items():
        result = results.get(name, {})
        parts[name] = camera_summary(c, result, args.mode, node_counters(result.get("node"), args.use_sim_time),
                                     by_height)
        nothing = nothing_evaluated(c, parts[name]["frames"]["sent"])
        if nothing and not failed:
            errors.append(c.label(nothing))
        parts[name]["per_frame"] = c.recorder.per_frame
    single = None in channels
    delivered = sum(c.recorder.delivered for c in channels.values())
    first = next(iter(channels.values()))
    summary = {
        "bag": str(args.bag), "mode": args.mode, "model": str(model), "model_description": description,
        "command": _command_line(args, model), "machine": machine_description(),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "settings": {"rate": args.rate if args.mode == "live" else None,
                     "use_sim_time": args.use_sim_time if args.mode == "live" else None,
                     "protocol": args.protocol, "min_depth_eval": args.min_depth, "max_depth_eval": args.max_depth,
                     "scale_factor": scale, "scale_mode": args.scale_mode,
                     "camera_height_m": first.camera_height if single else None,
                     "camera_height_source": first.height_source if single else None,
                     "output_resolution": "input", "namespace": "/sgdepth",
                     "node_params": node_params or None,
                     "ros_domain_id": domain[0] if domain else None,
                     "ros_domain_id_source": domain[1] if domain else None},
    }
    if single:
        summary.update({k: v for k, v in parts[None].items() if k != "per_frame"})
    else:
        summary["settings"]["cameras"] = list(channels)
        summary.update({"topics": None, "frames": overall_frames(parts), **pooled_sections(pooled),
                        "latency_ms": percentiles([v for r in results.values() for v in r.get("latency_ms", [])],
                                                  LATENCY_WHAT[args.mode]),
                        "latency_depth_ms": percentiles([v for r in results.values()
                                                         for v in r.get("depth_latency_ms", [])],
                                                        "send → depth arrival (live)"),
                        "node": None})
    summary.update({"throughput_fps": delivered / wall_s if wall_s else 0.0, "wall_s": wall_s,
                    "errors": errors, "complete": not errors})
    if single:
        summary["per_frame"] = parts[None]["per_frame"]
    else:
        summary.update({"pooling": POOLING, "cameras": parts, "per_frame": []})
    summary["outputs"] = {"bag": None if args.no_bag else str(bag_out)}
    previews = []
    for name, c in channels.items():
        for preview in c.recorder.previews:
            preview.label = name
            previews.append(preview)
    summary["outputs"] = write_report(summary, Path(args.out), previews)
    return summary


def _command_line(args: argparse.Namespace, model: Path) -> str:
    """The replay's main settings as a command line (for the report)."""
    parts = ["sgdepth-ros", "replay", args.bag, "--model", str(model), "--mode", args.mode, "--out", args.out]
    if args.cameras:
        parts += ["--cameras", args.cameras]
    if args.mode == "live":
        parts += ["--rate", f"{args.rate:g}"] + (["--use-sim-time"] if args.use_sim_time else [])
    if args.scale_mode != "auto":
        parts += ["--scale-mode", args.scale_mode]
    if args.camera_height is not None:
        parts += ["--camera-height", f"{args.camera_height:g}"]
    if args.max_frames:
        parts += ["--max-frames", str(args.max_frames)]
    return " ".join(shlex.quote(p) for p in parts)


def _print_summary(summary: dict, out: Path) -> None:
    from ..replay.rig_report import console_lines

    f = summary["frames"]
    cameras = summary.get("cameras")
    print(f"replay ({summary['mode']}) of {summary['bag']}: " + (f"{len(cameras)} cameras, " if cameras else "")
          + f"{f['delivered']} of {f['sent']} frames delivered" + (f", {f['dropped']} dropped" if f["dropped"] else ""))
    settings = summary["settings"]
    if settings.get("ros_domain_id") is not None:
        origin = "from ROS_DOMAIN_ID" if settings["ros_domain_id_source"] == "ROS_DOMAIN_ID" else "a free one, picked"
        print(f"  ROS domain {settings['ros_domain_id']} ({origin})")
    for line in console_lines(summary):
        print(line)
    if cameras:
        print("  overall (all cameras pooled):")
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
        metres = "" if height["height_m"] is None else f" {height['height_m']:g} m"
        line = (f"  camera height{metres} ({height['height_source']}): a scale on "
                f"{height['frames_with_scale']} of {height['frames']} frames")
        if error["count"]:
            line += f"; scale error median {100 * error['median_abs']:.1f} %, p95 {100 * error['p95_abs']:.1f} %"
            if not summary.get("cameras"):  # several cameras: each has its own jitter
                line += f", jitter {100 * (height['jitter'] or 0):.2f} %"
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
