"""The ``dreamvid`` command: a thin typer layer over the library.

The only module that imports typer. Every :class:`~renderer.errors.DreamvidError` becomes one line on
stderr and its exit code; ``--debug`` shows the traceback instead. Ctrl-C exits with 130.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import DreamvidError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="DeepDream video and animation renderer: fractal zooms, flow-guided dreaming, music sync.")
_state = {"debug": False}


@app.callback()
def _global(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False) -> None:
    _state["debug"] = debug


def parse_size(text: str | None) -> tuple[int, int] | None:
    """'640x360' -> (640, 360)."""
    if text is None:
        return None
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"bad size {text!r}", hint="write WIDTHxHEIGHT, e.g. 640x360") from None
    if width < 16 or height < 16:
        raise InputError(f"size {text} is too small", hint="use at least 16x16")
    return width, height


# ------------------------------------------------------------------------------------------------ still

@app.command()
def still(
    input: Annotated[str, typer.Argument(help="Image file, or 'noise' to dream from nothing.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output image (.png, .jpg, ...).")],
    objective: Annotated[Optional[str], typer.Option("--objective", "--layer", "-l",
                         help="What to amplify: mixed4c, mixed4d:97, 'mixed4c*0.6+mixed5a*0.4', class:banana, guide:img.jpg.")] = None,
    octaves: Annotated[int, typer.Option(min=1, help="Number of scales.")] = 4,
    octave_scale: Annotated[float, typer.Option(min=1.01, help="Size ratio between octaves.")] = 1.4,
    steps: Annotated[int, typer.Option(min=1, help="Gradient steps per octave.")] = 10,
    step_size: Annotated[float, typer.Option(min=0.0, help="Mean change per pixel per step ([0,1] units).")] = 0.006,
    jitter: Annotated[int, typer.Option(min=0, help="Random shift per step, pixels.")] = 32,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same image).")] = 0,
    size: Annotated[Optional[str], typer.Option(help="Resize to WxH (default: input size; 512x512 for noise).")] = None,
    model: Annotated[str, typer.Option(help="Backbone (see `dreamvid models`).")] = "inception5h",
    weights: Annotated[Optional[str], typer.Option(help="Weight file (default: $DREAMVID_WEIGHTS, cache, download).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")] = "auto",
    tile: Annotated[int, typer.Option(help="Tile side in px for big images; 0 = auto from free memory, -1 = off.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Dream one image: for tuning a look before rendering a video."""
    from .dream import DreamSettings
    from .stills import dream_still

    settings = DreamSettings(steps=steps, step_size=step_size, octaves=octaves, octave_scale=octave_scale,
                             jitter=jitter, tile=tile)
    result = dream_still(input, output, objective=objective, settings=settings, seed=seed, size=parse_size(size),
                         model=model, weights=weights, device=device, overwrite=overwrite)
    typer.echo(f"wrote {result}")


# ----------------------------------------------------------------------------------------------- models

@app.command()
def models(
    name: Annotated[Optional[str], typer.Argument(help="Show all layers of this model.")] = None,
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


def main() -> None:
    """Console entry point."""
    try:
        app(standalone_mode=False)
    except DreamvidError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"dreamvid: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("dreamvid: interrupted", err=True)
        sys.exit(130)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        typer.echo(f"dreamvid: internal error: {type(exc).__name__}: {exc} (run with --debug for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
