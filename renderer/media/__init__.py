"""Frame sources and sinks over ffmpeg pipes: probing, decoding, encoding, images, audio mux.

Conventions at this boundary:

- a frame is a numpy ``uint8`` array of shape ``(H, W, 3)``, RGB, C-contiguous; the pipeline converts
  to and from torch tensors itself;
- times are in seconds, frame rates in frames per second, sizes are ``(width, height)`` in pixels;
- audio is float32 mono in ``[-1, 1]``.

Frames travel through pipes as ``rgb24`` rawvideo, never through temporary image files. Every ffmpeg
process started here is reaped before the call that started it returns (or, for a reader, when the
reader is exhausted or closed): see :class:`~renderer.media.ffmpeg.Ffmpeg`. Encoders run in their
own process group so a Ctrl-C in the terminal reaches Python only, and we close ffmpeg's stdin
ourselves so it writes a playable file with every frame it was given.

Decoding gives constant-rate frames on a grid anchored at the requested start, so a reader can start
at any frame index (:func:`read_video` ``first=``) and give the same frames, bit for bit, as a read
from the start. Transparency (images, GIF, alpha codecs) is composited onto white.

A render writes into a work folder beside its output (:mod:`renderer.workdir`): one segment file per
:class:`SegmentWriter` session, which makes an interrupted render resumable; :func:`finalize`
concatenates the segments (and muxes the soundtrack) into the output, atomically, every frame on
the frame-rate grid so the container states the exact rate, count and duration.

One module per job:

- :mod:`.ffmpeg`: the process wrapper, the executable, errors quoted from ffmpeg's stderr;
- :mod:`.files`: :func:`atomic_path` (write under a temporary name, rename when complete);
- :mod:`.probe`: :class:`VideoInfo`, :func:`probe`, frame counting, packet timestamps;
- :mod:`.images`: still images and folders of numbered frames;
- :mod:`.decode`: :func:`read_video`, :func:`read_audio`;
- :mod:`.encode`: :class:`OutputFormat`, :class:`SegmentWriter`, codec arguments;
- :mod:`.finalize`: segments (+ soundtrack) -> output.

Everything other modules use is importable from this package: ``from renderer import media;
media.read_video(...)``.
"""

from .decode import VideoReader, read_audio, read_video
from .encode import OutputFormat, SegmentWriter, even_size, output_format, preview_path
from .ffmpeg import StrPath, ffmpeg_exe
from .files import atomic_path
from .finalize import AudioSource, finalize, partial_preview
from .images import FRAME_NAME, IMAGE_EXTENSIONS, is_image, list_frame_folder, load_image, save_image
from .probe import Packets, VideoInfo, count_frames, count_frames_and_secs, probe, video_packets

__all__ = [
    "FRAME_NAME", "IMAGE_EXTENSIONS", "AudioSource", "OutputFormat", "Packets",
    "SegmentWriter", "StrPath", "VideoInfo", "VideoReader", "atomic_path", "count_frames", "count_frames_and_secs",
    "even_size", "ffmpeg_exe", "finalize", "is_image", "list_frame_folder", "load_image", "output_format",
    "partial_preview", "preview_path", "probe", "read_audio", "read_video", "save_image",
    "video_packets",
]
