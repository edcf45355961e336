"""The ``dreamvid`` command: a thin typer layer over the library.

The only module that imports typer. Every :class:`~renderer.errors.DreamvidError` becomes one line on
stderr and its exit code; ``--debug`` shows the traceback instead. Ctrl-C exits with 130.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .dream import DEFAULTS, VIS_DEFAULTS, Precision
from .errors import DreamvidError

if TYPE_CHECKING:
    from .plan import RenderPlan
    from .sources import Source

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="DeepDream video and animation renderer: fractal zooms, flow-guided dreaming, music sync.")
_state = {"debug": False}


@app.callback()
def _global(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False) -> None:
    _state["debug"] = debug


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'640x360' -> (640, 360); None stays None."""
    from .config import parse_size as parse

    return None if text is None else parse(text)


def _sound_note(plan: RenderPlan) -> str:
    """The plan line's word on sound. GIF and PNG frames carry none, yet the soundtrack still drives
    the schedules (beats, levels, tempo): say both, so neither surprises."""
    if plan.source.audio is None:
        return "no sound"
    if plan.format.supports_audio:
        return "sound"
    kind = "PNG frames carry" if plan.format.is_folder else f"{plan.format.name} carries"
    if plan.preset.needs_soundtrack:
        return f"sound drives the schedules, not written ({kind} none)"
    return f"no sound ({kind} none)"


def _stretch_note(source: Source) -> str:
    """", stretched from 720x528" when the render size changes the input's aspect ratio, else ""."""
    return f", stretched from {source.native[0]}x{source.native[1]}" if source.stretched else ""


# ------------------------------------------------------------------------------------------------ still

@app.command()
def still(
    input: Annotated[str, typer.Argument(metavar="INPUT", help="Image file, or 'noise' to dream from nothing.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="PATH", help="Output image (.png, .jpg, ...).")],
    objective: Annotated[Optional[str], typer.Option("--objective", "--layer", "-l", metavar="OBJECTIVE",
                         help="What to amplify: mixed4c, mixed4d:97, 'mixed4c*0.6+mixed5a*0.4', class:banana, guide:img.jpg, "
                              "style:painting.jpg.")] = None,
    method: Annotated[str, typer.Option(metavar="METHOD", help="auto (visualise for noise with a class, else dream), dream "
                      "(DeepDream), visualise (feature visualisation: objects from nothing).")] = "auto",
    octaves: Annotated[Optional[int], typer.Option(metavar="N", min=1, help=f"Number of scales (dream {DEFAULTS.octaves}, "
                       f"visualise {VIS_DEFAULTS.octaves}).")] = None,
    octave_scale: Annotated[Optional[float], typer.Option(metavar="RATIO", min=1.01, help="Size ratio between octaves "
                            f"({DEFAULTS.octave_scale:g}).")] = None,
    steps: Annotated[Optional[int], typer.Option(metavar="N", min=1, help=f"Steps per octave (dream {DEFAULTS.steps}, "
                     f"visualise {VIS_DEFAULTS.steps}).")] = None,
    step_size: Annotated[Optional[float], typer.Option(metavar="AMOUNT", min=0.0, help="dream: mean change per pixel per step "
                         f"([0,1] units, {DEFAULTS.step_size:g}); visualise: Adam's learning rate ({VIS_DEFAULTS.learning_rate:g}).")] = None,
    jitter: Annotated[Optional[int], typer.Option(metavar="PX", min=0, help=f"Random shift per step, pixels "
                      f"(dream {DEFAULTS.jitter}, visualise {VIS_DEFAULTS.transforms.jitter}).")] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed (same seed, same image).")] = 0,
    size: Annotated[Optional[str], typer.Option(metavar="WxH", help="Resize to WxH (default: the input's size; 640x360 for noise).")] = None,
    model: Annotated[str, typer.Option(metavar="NAME", help="Backbone (see `dreamvid models`).")] = "inception5h",
    weights: Annotated[Optional[str], typer.Option(metavar="FILE", help="Weight file (default: the packaged or cached weights).")] = None,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, mps.")] = "auto",
    tile: Annotated[int, typer.Option(metavar="PX", help="Tile side in px for big images (dream); 0 = auto from free memory, -1 = off.")] = DEFAULTS.tile,
    precision: Annotated[Precision, typer.Option(case_sensitive=False, help="auto: bf16/fp16 on CUDA, fp32 elsewhere (bf16 is faster on CPUs with AMX).")] = DEFAULTS.precision,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Dream one image: for tuning a look before rendering a video, or a class visualisation from noise."""
    import contextlib

    from .errors import InputError
    from .stills import Method, StillOptions, dream_still

    try:
        chosen = Method(method.lower())
    except ValueError:
        raise InputError(f"unknown method {method!r}", hint="use auto, dream or visualise") from None
    options = StillOptions(steps=steps, step_size=step_size, octaves=octaves, octave_scale=octave_scale,
                           jitter=jitter, tile=tile, precision=precision)
    with contextlib.ExitStack() as stack:
        bar: list = []

        def progress(done: int, total: int) -> None:  # the bar appears with the first step, not before errors
            if not bar:
                bar.append(stack.enter_context(progress_bar(quiet)))
            if bar[0] is not None:
                bar[0](done, total)

        result = dream_still(input, output, objective=objective, options=options, method=chosen, seed=seed,
                             size=parse_size(size), model=model, weights=weights, device=device, overwrite=overwrite,
                             progress=progress)
    typer.echo(f"wrote {result}")


# ----------------------------------------------------------------------------------------------- models

@app.command()
def models(
    name: Annotated[Optional[str], typer.Argument(metavar="NAME", help="Show all layers of this model.")] = None,
) -> None:
    """List the backbones and their dreamable layers."""
    from .models import DEFAULT_MODEL, RANDOM_WEIGHTS, available_models, load_backbone

    for model_name in ([name] if name else available_models()):
        net = load_backbone(model_name, weights=RANDOM_WEIGHTS)  # layer names only: no weights needed
        layers = net.layer_names()
        if not name:
            layers = [n for n in layers if "_pre_relu" not in n]
        mark = " (default)" if model_name == DEFAULT_MODEL else ""
        typer.echo(f"{model_name}{mark}: default layer {net.default_layer}, class logits {net.logits_layer}")
        typer.echo("  layers: " + " ".join(layers))


# ----------------------------------------------------------------------------------------------- render

@app.command()
def render(
    input: Annotated[str, typer.Argument(metavar="INPUT", help="Video, image, folder of numbered frames, or 'noise'.")],
    # A string, not a Path: Path drops the trailing "/" that says "a folder of PNG frames" ("take_1.5/").
    output: Annotated[Optional[str], typer.Option("-o", "--output", metavar="PATH", help="Output: .mp4 .mov .webm .gif, or a folder/ "
                      "for PNG frames (default: INPUT.dream.mp4 beside the input).")] = None,
    preset: Annotated[Optional[list[str]], typer.Option("--preset", "-p", metavar="PRESET", help="Preset name or .toml path "
                      "(see `dreamvid presets`; default fractal-zoom). Repeat to layer: later presets override earlier "
                      "ones key by key (--preset fractal-zoom --preset mymotion.toml).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a preset key: --set dream.steps=6 (repeatable).")] = None,
    frames: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Frames to render (from --start for a video).")] = None,
    seconds: Annotated[Optional[float], typer.Option(metavar="SECONDS", min=0.01, help="Seconds to render (from --start for a video).")] = None,
    start: Annotated[float, typer.Option(metavar="SECONDS", min=0.0, help="Start of the video span, seconds.")] = 0.0,
    end: Annotated[Optional[float], typer.Option(metavar="SECONDS", help="End of the video span, seconds.")] = None,
    size: Annotated[Optional[str], typer.Option(metavar="WxH", help="Render size WxH (default: the input's).")] = None,
    scale: Annotated[Optional[float], typer.Option(metavar="FACTOR", min=0.01, help="Scale the render size, e.g. 0.5.")] = None,
    fps: Annotated[Optional[float], typer.Option(metavar="FPS", min=0.1, help="Output frame rate (default: the video's, else the preset's).")] = None,
    audio: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Soundtrack to use instead of the input's.")] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help="Render without sound.")] = False,
    bpm: Annotated[Optional[float], typer.Option(metavar="BPM", min=1.0, help="Tempo for beat keyframes (8b) and `bpm` (default: detected from the soundtrack).")] = None,
    crf: Annotated[Optional[int], typer.Option(metavar="CRF", min=0, max=63, help="Quality for mp4/webm (lower = better).")] = None,
    seed: Annotated[Optional[int], typer.Option(metavar="N", min=0, help="Random seed (same seed, same video).")] = None,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, mps.")] = "auto",
    preview: Annotated[bool, typer.Option("--preview", help="Fast low-resolution, few-step pass of the same settings, "
                      "written to INPUT.preview.mp4 (or -o).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted render.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output (and discard an unfinished one).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    loop: Annotated[bool, typer.Option("--loop", help="A perfect loop: the last frame carries on into the first "
                    "(output.loop; the length must be known: --frames/--seconds for images and noise).")] = False,
    loop_bars: Annotated[Optional[float], typer.Option("--loop-bars", metavar="N", min=0.01, help="A loop N bars "
                         "(4 beats) long at the soundtrack's tempo (or --bpm); the sound is cut to the loop.")] = None,
    cluster: Annotated[Optional[str], typer.Option(metavar="ADDRESS", help="Render on a Ray cluster: auto (the one "
                       "this machine belongs to) or ray://HOST:PORT. Flow mode is split into spans over the workers; "
                       "feedback mode runs on one. Needs: pip install 'dreamvid[cluster]'.")] = None,
    workers: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Workers: with --cluster, how many "
                       "(default: one per GPU, else per CPU); alone, start Ray on this machine with N workers.")] = None,
) -> None:
    """Render a dreamed video: zoom feedback or optical-flow dreaming, with the soundtrack."""
    from .pipeline import render as run_render
    from .plan import RenderRequest, plan_render

    on_ray = cluster is not None or workers is not None
    if on_ray:
        from .cluster.ray_backend import require_ray

        require_ray()  # before planning: a missing extra is the first thing to hear about
    request = RenderRequest(input, output, tuple(preset or ("fractal-zoom",)), tuple(set_ or ()), frames, seconds, start, end, parse_size(size),
                            scale, fps, audio, no_audio, crf, seed, bpm, device, preview, resume, overwrite,
                            loop=loop, loop_bars=loop_bars)
    plan = plan_render(request)
    source = plan.source
    if not quiet:
        typer.echo(f"{source.kind.value} {source.path or ''} -> {plan.output}: {source.n_frames} frames "
                   f"{source.width}x{source.height}{_stretch_note(source)} at {source.fps:g} fps, {plan.preset.mode.value} mode, "
                   f"{_sound_note(plan)}" + (", resuming" if plan.resume else ""), err=True)
    if on_ray:
        from .cluster import ProgressView, render_on_cluster

        with ProgressView(quiet) as view:
            result = render_on_cluster(plan, cluster, workers, device=device, progress=view,
                                       announce=lambda line: typer.echo(line, err=True))
    else:
        with progress_bar(quiet) as progress:
            result = run_render(plan, progress)
    typer.echo(f"wrote {result}")


@app.command()
def batch(
    jobs: Annotated[Path, typer.Argument(metavar="JOBS.toml", help="[[job]] tables, each with input, output, preset "
                    "(a name or a list), set (a list of KEY=VALUE) and any other render option (see README).")],
    cluster: Annotated[Optional[str], typer.Option(metavar="ADDRESS", help="Spread the jobs over a Ray cluster: auto "
                       "or ray://HOST:PORT (default: one after the other here).")] = None,
    workers: Annotated[Optional[int], typer.Option(metavar="N", min=1, help="Ray workers (alone: start Ray here with N).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip finished jobs, continue interrupted ones.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Render several jobs from a jobs file: every job is checked before the first starts."""
    from .batch import load_jobs, plan_jobs, run_local

    on_ray = cluster is not None or workers is not None
    if on_ray:
        from .cluster.ray_backend import require_ray

        require_ray()
    plans = plan_jobs(load_jobs(jobs, resume=resume, overwrite=overwrite), jobs)
    announce = (lambda line: None) if quiet else (lambda line: typer.echo(line, err=True))
    announce(f"{len(plans)} job{'s' * (len(plans) != 1)} to render")
    if on_ray:
        from .cluster import ProgressView, run_renders, whole
        from .cluster.ray_backend import RayExecutor

        with RayExecutor(cluster, workers) as executor, ProgressView(quiet) as view:
            results = run_renders(whole(plans), executor, view, announce)
    else:
        with progress_bar(quiet) as progress:
            results = run_local(plans, announce, progress)
    for result in results:
        typer.echo(f"wrote {result}")


class progress_bar:
    """A rich progress bar (frames, frames per second, ETA) as a callback; nothing when quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __enter__(self):
        if self.quiet:
            return None
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._bar = Progress(TextColumn("dreaming"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                             TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                             TimeRemainingColumn(), transient=False, console=Console(stderr=True))
        self._bar.__enter__()
        self._task = self._bar.add_task("render", total=None, rate="")

        def update(done: int, total: int) -> None:
            task = self._bar.tasks[0]
            speed = task.speed
            rate = f"{speed:.2f} fps" if speed and speed >= 1 else (f"{1 / speed:.1f} s/frame" if speed else "")
            self._bar.update(self._task, completed=done, total=max(total, done), rate=rate)

        return update

    def __exit__(self, *exc) -> None:
        if not self.quiet:
            self._bar.__exit__(*exc)


# ---------------------------------------------------------------------------------------------- presets

presets_app = typer.Typer(help="List shipped presets, or show one.", invoke_without_command=True)
app.add_typer(presets_app, name="presets")


@presets_app.callback()
def presets_list(ctx: typer.Context) -> None:
    """List presets with their descriptions."""
    if ctx.invoked_subcommand:
        return
    from .config import load_preset, preset_names

    for name in preset_names():
        typer.echo(f"{name:16} {load_preset(name).description}")


@presets_app.command("show")
def presets_show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Preset name or .toml path.")],
    preset: Annotated[Optional[list[str]], typer.Option("--preset", "-p", metavar="PRESET", help="Layer another preset "
                      "over it (repeatable; later ones win key by key).")] = None,
) -> None:
    """Print a preset with every setting (defaults filled in), or several layered."""
    from .config import dump_toml, find_preset, load_preset

    layers = [name, *(preset or ())]
    typer.echo(dump_toml(load_preset(layers), [f"preset {layer} ({find_preset(layer)})" for layer in layers]))


# --------------------------------------------------------------------------------------------- schedule

@app.command()
def schedule(
    preset: Annotated[str, typer.Argument(metavar="PRESET", help="Preset name or .toml path.")],
    layers: Annotated[Optional[list[str]], typer.Option("--preset", "-p", metavar="PRESET", help="Layer another preset "
                      "over it (repeatable; later ones win key by key).")] = None,
    audio: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Soundtrack (audio or video file) for audio variables.")] = None,
    plot: Annotated[Optional[Path], typer.Option(metavar="PNG", help="Draw the schedules into this PNG.")] = None,
    fps: Annotated[Optional[float], typer.Option(metavar="FPS", min=0.1, help="Frame rate (default: the preset's).")] = None,
    seconds: Annotated[Optional[float], typer.Option(metavar="SECONDS", min=0.01, help="Length (default: the audio's, else 10 s).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a preset key (repeatable).")] = None,
    every: Annotated[int, typer.Option(metavar="N", min=0, help="Print every Nth frame (0: about 20 rows).")] = 0,
) -> None:
    """Show a preset's scheduled values over time (and the audio features), before rendering."""
    import numpy as np

    from .config import load_preset
    from .plan import soundtrack_features
    from .sources import open_source
    from .timeline import build_timeline

    settings = load_preset([preset, *(layers or ())], set_ or [])
    rate = fps or settings.output.fps
    features = None
    if audio is not None:
        # The soundtrack as a render would hear it: the same planning and analysis, on silent frames.
        source = open_source("noise", size=(16, 16), fps=rate, seconds=seconds, audio=audio)
        features = soundtrack_features(source)
        n_frames = source.n_frames
    else:
        n_frames = round((seconds or 10.0) * rate)
    timeline = build_timeline(settings, max(n_frames, 1), rate, features)
    if features is not None:
        typer.echo(f"tempo: {features.bpm:.1f} bpm, {len(features.beat_times)} beats" if features.bpm else "tempo: none found")
    step = every or max(1, timeline.n_frames // 20)
    keys = [k for k, v in timeline.values.items() if np.ptp(v) > 0]
    typer.echo("frame  seconds  " + "  ".join(keys) + "  objective")
    for n in range(0, timeline.n_frames, step):
        objective = " + ".join(f"{w:.2f}*{t}" if w < 1 else t for t, w in timeline.objective.weights_at(n, timeline.context))
        values = "  ".join(f"{timeline.values[k][n]:{len(k)}.4g}" for k in keys)
        typer.echo(f"{n:5d}  {n / rate:7.2f}  {values}  {objective}")
    if plot is not None:
        from .plot import plot_timeline

        typer.echo(f"wrote {plot_timeline(timeline, features, plot)}")


# ----------------------------------------------------------------------------------------------- studio

@app.command()
def studio(
    folder: Annotated[Path, typer.Argument(metavar="FOLDER", help="Workspace: inputs, soundtracks, presets and "
                      "renders live here (default: the current folder).")] = Path("."),
    port: Annotated[int, typer.Option(metavar="PORT", min=0, max=65535, help="Port (default: a free one).")] = 0,
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to listen on. Anything but loopback lets "
                    "other machines reach the studio.")] = "127.0.0.1",
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, mps (for previews).")] = "auto",
) -> None:
    """A web studio in the browser: live preview, schedules over the soundtrack, renders with progress."""
    from .studio import is_loopback, serve

    if not is_loopback(host):
        typer.echo(f"dreamvid: warning: listening on {host}: other machines on the network can reach the studio "
                   "(its token still guards it, but traffic is not encrypted)", err=True)
    serve(folder, host=host, port=port, open_browser=not no_browser, device=device,
          announce=lambda line: typer.echo(line, err=True))


# ----------------------------------------------------------------------------------------------- import

@app.command("import")
def import_settings(
    settings: Annotated[Path, typer.Argument(metavar="SETTINGS", help="A Deforum settings file (the JSON .txt saved "
                        "beside its frames) or a Parseq export (.json); the format is told by its content.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="PRESET.toml", help="The dreamvid preset to write.")],
    size: Annotated[Optional[str], typer.Option(metavar="WxH", help="Picture size that translations (pixels) are "
                    "measured against (default: Deforum's W x H; 512x512 for Parseq).")] = None,
    deltas: Annotated[bool, typer.Option("--deltas/--no-deltas", help="Parseq: read motion from the *_delta fields, "
                      "as Deforum does by default (parseq_use_deltas).")] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing preset.")] = False,
) -> None:
    """Turn Deforum or Parseq settings into a dreamvid preset; lists every setting that has no equivalent."""
    from .importers import read_settings, write_preset

    imported = read_settings(settings, size=parse_size(size), deltas=deltas)
    written = write_preset(imported, output, overwrite)
    grouped = imported.unmapped_by_reason()
    if grouped:
        typer.echo(f"not carried ({len(imported.unmapped)} settings with no dreamvid equivalent, listed in the preset too):")
        for reason, keys in grouped.items():
            typer.echo(f"  {reason}: {', '.join(keys)}")
    carried = [f"{section}.{key}" for section, table in imported.raw.items() if isinstance(table, dict) for key in table]
    typer.echo(f"carried: {', '.join(carried)}")
    typer.echo(f"render it: {imported.render_command(written)}")
    typer.echo(f"wrote {written}")


def main() -> None:
    """Console entry point: every error, a usage error included, becomes one line and an exit code."""
    import warnings

    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    from .devices import keep_freed_memory

    keep_freed_memory()
    # The library warns through `warnings`; a user sees one plain line.
    warnings.formatwarning = lambda message, *args, **kwargs: f"dreamvid: warning: {message}\n"
    try:
        code = app(standalone_mode=False)  # usage errors are raised to here instead of printed as a box
        sys.exit(code if isinstance(code, int) else 0)
    except NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help())
        sys.exit(2)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "dreamvid"
        typer.echo(f"dreamvid: error: {exc.format_message()} - see {command} --help", err=True)
        sys.exit(exc.exit_code)
    except ClickException as exc:
        typer.echo(f"dreamvid: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except DreamvidError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"dreamvid: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("dreamvid: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        typer.echo(f"dreamvid: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
