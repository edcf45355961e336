"""dreamvid: DeepDream video and animation renderer.

The package is a library first (``renderer.dream``, ``renderer.models``, ``renderer.pipeline``);
``renderer.cli`` is a thin typer layer over it.
"""

__version__ = "0.1.0"
