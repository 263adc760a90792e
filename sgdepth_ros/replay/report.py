"""Files of a bag replay evaluation: strict JSON, a Markdown report, matplotlib plots and a preview strip.

:func:`write_report` turns the evaluation's summary dict and a few :class:`PreviewFrame` into

* ``<stem>.json``: the summary (NaN/inf as ``null``, so it is strict JSON), latency samples included;
* ``<stem>.md``: the human-readable report (:func:`format_markdown`);
* ``error_vs_distance.png``, ``latency.png``, ``per_class_iou.png``, ``camera_height_scale.png`` (per-frame scale
  estimate, filtered scale and the ground truth's scale, scale_mode camera_height): plots, each only when its data
  exist;
* ``preview.png``: one row per preview frame (:mod:`.preview`).

matplotlib is optional: it is imported only while plotting (through the object API with the Agg canvas, so no
global backend is switched); without it the plots are skipped and the report says so under ``outputs["warnings"]``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..labels import CLASS_NAMES
from .cells import DASH as _DASH, cell as _cell, count as _count, fmt as _fmt, num as _num, pct as _pct, \
    table as _table, to_jsonable
from .preview import PANEL_HEIGHT, PREVIEW_NAME, TITLE_BAND, PreviewFrame, render_preview
from .rig_report import cameras_section

__all__ = ["PreviewFrame", "write_report", "format_markdown", "render_preview", "to_jsonable",
           "PANEL_HEIGHT", "TITLE_BAND", "PLOT_NAMES", "SCALE_PLOT_NAME", "PREVIEW_NAME"]

log = logging.getLogger(__name__)

PLOT_NAMES = {"distance": "error_vs_distance.png", "latency": "latency.png", "iou": "per_class_iou.png"}
SCALE_PLOT_NAME = "camera_height_scale.png"  # only with scale_mode camera_height
_ALL_PLOTS = {**PLOT_NAMES, "scale": SCALE_PLOT_NAME}
_DPI = 100
_METRIC_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
_METRIC_TITLES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "δ<1.25", "δ<1.25²", "δ<1.25³")


# ----------------------------------------------------------------------------------------------- Markdown

def _dropped_line(frames: dict) -> str:
    """"dropped 12 of 40 (30 %)": frames sent that never came back, as a share of those sent."""
    dropped, sent = frames.get("dropped"), frames.get("sent")
    if dropped is None or sent is None:
        return f"dropped {_count(dropped)}"
    return f"dropped {dropped} of {sent} ({_pct(dropped, sent)})"


def _link(path: str | None, base: Path | None) -> str | None:
    """``path`` relative to the Markdown file's folder (as given when it cannot be made relative)."""
    if not path:
        return None
    if base is None:
        return Path(path).as_posix()
    try:
        return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive
        return Path(path).as_posix()


def _plot_link(outputs: dict, name: str, base: Path | None) -> str | None:
    for p in outputs.get("plots") or []:
        if Path(p).name == name:
            return _link(p, base)
    return None


def _frames_section(frames: dict) -> list[str]:
    sent = frames.get("sent")
    rows = [["in bag", _count(frames.get("in_bag"))],
            ["sent", _count(sent)],
            ["delivered", _count(frames.get("delivered"))],
            ["dropped", _dropped_line(frames).removeprefix("dropped ")]]
    for key, title in (("dropped_by_node", "dropped by the node"), ("lost", "lost")):
        v = frames.get(key)
        rows.append([title, _DASH if v is None else (f"{v} ({_pct(v, sent)})" if sent else str(v))])
    rows += [["evaluated (depth)", _count(frames.get("evaluated_depth"))],
             ["evaluated (segmentation)", _count(frames.get("evaluated_semantic"))],
             ["without ground truth", _count(frames.get("without_ground_truth"))],
             ["unreadable", _count(frames.get("unreadable"))]]
    if frames.get("scale_unpaired") is not None:  # live, scale_mode camera_height
        rows.append(["metric, its depth/scale factor never arrived (not scored)", _count(frames["scale_unpaired"])])
    summary_line = (f"Sent {_count(sent)}, delivered {_count(frames.get('delivered'))}, {_dropped_line(frames)} "
                    "(sent without an output).")
    return ["## Frames", "", summary_line, "",
            *_table(["frames", "count"], rows), ""]


def _depth_section(depth: dict | None, outputs: dict, base: Path | None, height: dict | None = None) -> list[str]:
    out = ["## Depth", ""]
    if not depth:
        return out + ["no depth ground truth in the bag", ""]
    gt = depth.get("ground_truth")
    gt_text = {"dense": "dense depth images", "lidar": "LiDAR points projected into the image (sparse)"}
    out += [f"Ground truth: {gt_text.get(gt, gt or _DASH)}."]
    extras = []
    for key, title in (("protocol", "protocol"), ("min_depth_eval", "min depth"), ("max_depth_eval", "max depth"),
                       ("frames", "frames")):
        if depth.get(key) is not None:
            extras.append(f"{title} {depth[key]}")
    if extras:
        out[-1] += " " + ", ".join(extras).capitalize() + "."
    out.append("")
    rows = []
    median = depth.get("median") or {}
    if median.get("metrics"):
        rows.append(["median scaling"] + [_fmt(median["metrics"].get(k)) for k in _METRIC_KEYS])
    fixed = depth.get("fixed")
    if fixed and fixed.get("metrics"):
        scale = _num(fixed.get("scale"))
        title = f"fixed scale ×{scale:.4g}" if scale is not None else "fixed scale"
        rows.append([title] + [_fmt(fixed["metrics"].get(k)) for k in _METRIC_KEYS])
    if height and height.get("metrics"):
        title = f"camera height {_fmt(height.get('height_m'), 2)} m ({_count(height.get('frames_scored'))} frames)"
        rows.append([title] + [_fmt(height["metrics"].get(k)) for k in _METRIC_KEYS])
    if rows:
        out += _table(["scaling", *_METRIC_TITLES], rows) + [""]
    ratio = median.get("ratio")
    if ratio:
        out += [f"Scaling ratio (median scaling, per frame): median {_fmt(ratio.get('median'))}, "
                f"std {_fmt(ratio.get('std'))} over {_count(ratio.get('count'))} frames.", ""]
    bins = depth.get("bins") or []
    if bins:
        scaling = depth.get("bins_scaling")
        out += [f"Error by ground-truth distance (pixel-weighted, {scaling or _DASH} scaling):", ""]
        rows = [[f"{_fmt(b.get('lo'), 0)}–{_fmt(b.get('hi'), 0)}", _count(b.get("pixels")),
                 _fmt(b.get("abs_rel")), _fmt(b.get("rmse")), _fmt(b.get("a1"))] for b in bins]
        out += _table(["distance (m)", "pixels", "abs_rel", "rmse (m)", "δ<1.25"], rows) + [""]
    link = _plot_link(outputs, PLOT_NAMES["distance"], base)
    if link:
        out += [f"![error vs distance]({link})", ""]
    return out


def _pct_cell(value: Any) -> str:
    f = _num(value)
    return _DASH if f is None else f"{100 * f:.2f} %"


def _camera_height_section(height: dict | None, outputs: dict, base: Path | None) -> list[str]:
    """The scale measured from the camera height: where the height came from, errors, jitter (camera_height)."""
    if not height:
        return []
    source = height.get("height_source") or _DASH
    where = f"Camera height {_fmt(height['height_m'], 3)} m from {source}." if height.get("height_m") is not None \
        else f"Camera heights: {source}."  # several cameras
    out = ["## Scale from the camera height", "",
           f"{where} "
           f"{_count(height.get('frames'))} frames: {_count(height.get('frames_with_estimate'))} with an own "
           f"estimate (enough road), {_count(height.get('frames_with_scale'))} with a filtered scale (the others "
           f"stay relative), {_count(height.get('frames_with_ground_truth'))} with depth ground truth.", ""]
    rows = []
    for key, title in (("scale_error", "filtered scale"), ("estimate_error", "per-frame estimate")):
        e = height.get(key) or {}
        rows.append([title, _count(e.get("count")), _pct_cell(e.get("median_abs")), _pct_cell(e.get("p95_abs")),
                     _pct_cell(e.get("max_abs")), _pct_cell(e.get("median"))])
    out += ["Error against the ground truth's scale (median of ground truth / prediction in model units over the "
            "evaluated pixels, per frame):", ""]
    out += _table(["scale", "frames", "median |error|", "p95 |error|", "max |error|", "median (signed)"], rows) + [""]
    filtered = height.get("filtered_scale") or {}
    out += [f"Filtered scale: mean {_fmt(filtered.get('mean'), 4)} m/unit (min {_fmt(filtered.get('min'), 4)}, max "
            f"{_fmt(filtered.get('max'), 4)}), jitter (std / mean) {_pct_cell(height.get('jitter'))}; the ground "
            f"truth's scale: median {_fmt(height.get('gt_scale_median'), 4)} m/unit.", ""]
    median = height.get("median_same_frames") or {}
    metrics = height.get("metrics") or {}
    if metrics and median:
        out += [f"AbsRel on the {_count(height.get('frames_scored'))} frames with a scale: "
                f"{_fmt(metrics.get('abs_rel'))} with the camera-height scale, {_fmt(median.get('abs_rel'))} with "
                f"per-image median scaling.", ""]
    link = _plot_link(outputs, SCALE_PLOT_NAME, base)
    if link:
        out += [f"![camera-height scale per frame]({link})", ""]
    return out


def _segmentation_section(seg: dict | None, outputs: dict, base: Path | None) -> list[str]:
    out = ["## Segmentation", ""]
    if not seg:
        return out + ["no semantic ground truth in the bag", ""]
    frames = f" over {seg['frames']} frames" if seg.get("frames") is not None else ""
    out += [f"mIoU **{_fmt(seg.get('miou'))}**, pixel accuracy {_fmt(seg.get('pixel_acc'))}, "
            f"mean accuracy {_fmt(seg.get('mean_acc'))} ({_count(seg.get('pixels'))} pixels{frames}).", ""]
    iou = list(seg.get("iou") or [])
    names = list(seg.get("class_names") or CLASS_NAMES)
    if iou:
        rows = [[str(i), names[i] if i < len(names) else str(i), _fmt(v)] for i, v in enumerate(iou)]
        out += _table(["trainId", "class", "IoU"], rows, ["--:", "---", "--:"]) + [""]
    link = _plot_link(outputs, PLOT_NAMES["iou"], base)
    if link:
        out += [f"![per-class IoU]({link})", ""]
    return out


def _latency_section(summary: dict, outputs: dict, base: Path | None) -> list[str]:
    out = ["## Latency and throughput", ""]
    lat = summary.get("latency_ms")
    if not lat:
        out += ["no latency measured", ""]
    else:
        out += [f"Latency ({lat.get('what') or _DASH}): p50 {_fmt(lat.get('p50'), 1)} ms, "
                f"p95 {_fmt(lat.get('p95'), 1)} ms, mean {_fmt(lat.get('mean'), 1)} ms, "
                f"max {_fmt(lat.get('max'), 1)} ms over {_count(lat.get('count'))} frames.", ""]
    out += [f"Throughput {_fmt(summary.get('throughput_fps'), 2)} frames/s, "
            f"wall time {_fmt(summary.get('wall_s'), 1)} s.", ""]
    link = _plot_link(outputs, PLOT_NAMES["latency"], base)
    if link:
        out += [f"![latency]({link})", ""]
    return out


def format_markdown(summary: dict) -> str:
    """The Markdown report of a replay summary (pure: reads only the dict).

    Links are made relative to the folder of ``summary["outputs"]["report_md"]`` when it is set.
    """
    outputs = summary.get("outputs") or {}
    base = Path(outputs["report_md"]).parent if outputs.get("report_md") else None
    mode = summary.get("mode") or _DASH
    lines = [f"# Bag replay report: {mode}", ""]
    model = summary.get("model_description") or _DASH
    if summary.get("model"):
        model += f" (`{summary['model']}`)"
    lines += [f"**Bag** `{summary.get('bag') or _DASH}` · **mode** {mode} · **model** {model} · "
              f"**date** {summary.get('date') or _DASH} · **machine** {summary.get('machine') or _DASH}", ""]
    if summary.get("command"):
        lines += ["```", str(summary["command"]), "```", ""]

    errors = [str(e) for e in summary.get("errors") or []]
    if errors or summary.get("complete") is False:
        if (summary.get("frames") or {}).get("delivered") == 0:
            lines += ["> **No results**: no frame was evaluated:", ">"]
        else:
            lines += ["> **Partial results**: the replay did not run to the end of the bag; the numbers below cover "
                      "only the frames processed before:", ">"]
        lines += [f"> - {' '.join(e.split())}" for e in errors] or ["> - (no error was recorded)"]
        lines += [""]

    settings = summary.get("settings") or {}
    topics = summary.get("topics") or {}
    if settings or topics:
        lines += ["## Settings", ""]
        rows = [[f"topic: {k}", f"`{v}`" if v else _DASH] for k, v in topics.items()]
        rows += [[str(k), _cell(v)] for k, v in settings.items()]
        lines += _table(["setting", "value"], rows, ["---", "---"]) + [""]

    lines += cameras_section(summary)  # several cameras: per camera and overall
    lines += _frames_section(summary.get("frames") or {})
    lines += _depth_section(summary.get("depth"), outputs, base, summary.get("camera_height"))
    lines += _camera_height_section(summary.get("camera_height"), outputs, base)
    lines += _segmentation_section(summary.get("segmentation"), outputs, base)
    lines += _latency_section(summary, outputs, base)

    node = summary.get("node")
    lines += ["## Node diagnostics", ""]
    if node:
        lines += _table(["key", "value"], [[_cell(k, 40), _cell(v)] for k, v in node.items()], ["---", "---"])
    elif summary.get("cameras"):
        lines += ["per camera: see Cameras"]
    else:
        lines += ["no node diagnostics"]
    lines += [""]

    lines += ["## Files", ""]
    files = [("report (JSON)", outputs.get("report_json"))]
    files += [(Path(p).stem.replace("_", " "), p) for p in outputs.get("plots") or []]
    files += [("preview", outputs.get("preview")), ("output bag", outputs.get("bag"))]
    entries = [f"- [{title}]({_link(p, base)})" for title, p in files if p]
    lines += entries or ["no files"]
    lines += [f"- **warning**: {' '.join(str(w).split())}" for w in outputs.get("warnings") or []]
    if outputs.get("preview"):
        lines += ["", f"![preview]({_link(outputs['preview'], base)})"]
    return "\n".join(lines).rstrip() + "\n"


# -------------------------------------------------------------------------------------------------- plots

def _save(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI)


def _plot_distance(bins: list[dict], scaling: str | None, path: Path) -> None:
    from matplotlib.figure import Figure
    labels = [f"{_fmt(b.get('lo'), 0)}–{_fmt(b.get('hi'), 0)}" for b in bins]
    x = np.arange(len(bins))
    abs_rel = np.array([_num(b.get("abs_rel")) if _num(b.get("abs_rel")) is not None else np.nan for b in bins])
    a1 = np.array([_num(b.get("a1")) if _num(b.get("a1")) is not None else np.nan for b in bins])
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.bar(x, np.nan_to_num(abs_rel), color="tab:red")
    ax1.set_ylabel("abs_rel")
    top = np.nanmax(abs_rel) if np.isfinite(abs_rel).any() else 1.0
    ax1.set_ylim(0, max(top, 1e-6) * 1.25)
    for xi, b, v in zip(x, bins, abs_rel):
        n = b.get("pixels") or 0
        text = f"n={n:,}" if np.isfinite(v) else f"n={n:,}\n(empty)"
        ax1.annotate(text, (xi, np.nan_to_num(v)), ha="center", va="bottom", fontsize=7,
                     xytext=(0, 2), textcoords="offset points")
    ax1.set_title(f"Depth error by ground-truth distance ({scaling or '?'} scaling)")
    ax2.bar(x, np.nan_to_num(a1), color="tab:blue")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("δ<1.25")
    ax2.set_xticks(x, labels)
    ax2.set_xlabel("ground-truth distance (m)")
    _save(fig, path)


def _plot_latency(lat: dict, samples: np.ndarray, path: Path) -> None:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.hist(samples, bins=min(50, max(5, int(np.sqrt(samples.size)))), color="tab:gray")
    for key, colour in (("p50", "tab:blue"), ("p95", "tab:red")):
        v = _num(lat.get(key))
        if v is None:
            v = float(np.percentile(samples, 50 if key == "p50" else 95))
        ax.axvline(v, color=colour, linestyle="--", label=f"{key} {v:.1f} ms")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("frames")
    ax.set_title(f"Latency: {lat.get('what') or ''} ({samples.size} frames)")
    ax.legend()
    _save(fig, path)


def _plot_iou(seg: dict, path: Path) -> None:
    from matplotlib.figure import Figure
    iou = [_num(v) for v in seg.get("iou") or []]
    names = list(seg.get("class_names") or CLASS_NAMES)
    names = [names[i] if i < len(names) else str(i) for i in range(len(iou))]
    y = np.arange(len(iou))
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.subplots()
    ax.barh(y, [v if v is not None else 0.0 for v in iou], color="tab:green")
    for yi, v in zip(y, iou):
        ax.text((v or 0.0) + 0.01, yi, "n/a" if v is None else f"{v:.2f}", va="center", fontsize=7)
    miou = _num(seg.get("miou"))
    if miou is not None:
        ax.axvline(miou, color="k", linestyle="--", label=f"mIoU {miou:.3f}")
        ax.legend(loc="lower right")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("IoU")
    ax.set_title("Per-class IoU")
    _save(fig, path)


def _plot_scale(per_frame: list[dict], height: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    def series(key: str) -> np.ndarray:
        return np.array([_num(r.get(key)) if _num(r.get(key)) is not None else np.nan for r in per_frame])

    x = np.array([r.get("index", i) for i, r in enumerate(per_frame)])
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(x, series("scale_gt"), "k-", lw=1.5, label="ground truth (median gt / pred)")
    ax.plot(x, series("scale_estimate"), ".", color="tab:orange", label="per-frame estimate")
    ax.plot(x, series("scale_filtered"), "-", color="tab:blue", lw=1.5, label="filtered")
    ax.set_xlabel("frame")
    ax.set_ylabel("metres per model unit")
    ax.set_title(f"Scale from the camera height ({_fmt(height.get('height_m'), 2)} m)")
    ax.legend(fontsize=8)
    _save(fig, path)


def _write_plots(summary: dict, out_dir: Path, warnings: list[str]) -> list[str]:
    """The plots whose data exist; stale plots of an earlier run in ``out_dir`` are removed."""
    depth, seg, lat = summary.get("depth"), summary.get("segmentation"), summary.get("latency_ms")
    samples = np.asarray([s for s in ((lat or {}).get("samples") or []) if _num(s) is not None], np.float64)
    jobs = []
    if depth and depth.get("bins"):
        jobs.append(("distance", lambda p: _plot_distance(depth["bins"], depth.get("bins_scaling"), p)))
    if lat and samples.size:
        jobs.append(("latency", lambda p: _plot_latency(lat, samples, p)))
    if seg and seg.get("iou"):
        jobs.append(("iou", lambda p: _plot_iou(seg, p)))
    height, per_frame = summary.get("camera_height"), summary.get("per_frame") or []
    if height and any("scale_estimate" in r for r in per_frame):
        jobs.append(("scale", lambda p: _plot_scale(per_frame, height, p)))
    for key, name in _ALL_PLOTS.items():
        if key not in dict(jobs):
            (out_dir / name).unlink(missing_ok=True)
    if not jobs:
        return []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.append("matplotlib is not installed: plots skipped (pip install matplotlib)")
        log.warning(warnings[-1])
        for key, _ in jobs:
            (out_dir / _ALL_PLOTS[key]).unlink(missing_ok=True)
        return []
    written = []
    for key, plot in jobs:
        path = out_dir / _ALL_PLOTS[key]
        try:
            plot(path)
            written.append(str(path))
        except Exception as exc:  # a plot must never cost the report
            path.unlink(missing_ok=True)
            warnings.append(f"plot {path.name} failed: {type(exc).__name__}: {exc}")
            log.warning(warnings[-1])
    return written


# ---------------------------------------------------------------------------------------------- the files

def write_report(summary: dict, out_dir: Path, previews: list[PreviewFrame], stem: str = "report") -> dict:
    """Write ``<stem>.json``, ``<stem>.md``, the plots and ``preview.png`` into ``out_dir`` (created).

    Sets ``summary["outputs"]`` (report_json, report_md, plots, preview; ``bag`` is kept; ``warnings`` is added
    when plots were skipped or failed) and returns it. Plot and preview failures never raise; they are listed in
    the warnings.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = dict(summary.get("outputs") or {})
    outputs.setdefault("bag", None)
    outputs.pop("warnings", None)
    warnings: list[str] = []
    outputs["report_json"] = str(out_dir / f"{stem}.json")
    outputs["report_md"] = str(out_dir / f"{stem}.md")
    outputs["plots"] = _write_plots(summary, out_dir, warnings)

    preview_path = out_dir / PREVIEW_NAME
    outputs["preview"] = None
    try:
        strip = render_preview(list(previews or []))
        if strip is not None:
            if not cv2.imwrite(str(preview_path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cv2.imwrite could not write {preview_path}")
            outputs["preview"] = str(preview_path)
        else:
            preview_path.unlink(missing_ok=True)
    except Exception as exc:
        preview_path.unlink(missing_ok=True)
        warnings.append(f"preview failed: {type(exc).__name__}: {exc}")
        log.warning(warnings[-1])
    if warnings:
        outputs["warnings"] = warnings
    summary["outputs"] = outputs

    text = json.dumps(to_jsonable(summary), indent=2, ensure_ascii=False, allow_nan=False)
    Path(outputs["report_json"]).write_text(text + "\n", encoding="utf-8")
    Path(outputs["report_md"]).write_text(format_markdown(summary), encoding="utf-8")
    return outputs
