"""The one table of image formats, and writing a matplotlib figure whole or not at all."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mha_cli.errors import MhaError
from mha_cli.files.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IMAGE_FORMATS = ("png", "svg", "pdf")


def format_of_path(path: Path | str, what: str = "image") -> str:
    """The format `path`'s extension names, or one line naming the accepted ones."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in IMAGE_FORMATS:
        shown = f"'.{suffix}'" if suffix else "no extension"
        raise MhaError(
            f"cannot write {what} {path}: {shown} is not an image format; use .png, .svg or .pdf"
        )
    return suffix


def check_format_name(name: str, option: str = "--image-format") -> str:
    """`png`, `svg` or `pdf` as an option gives it (a leading dot allowed)."""
    fmt = name.lower().lstrip(".")
    if fmt not in IMAGE_FORMATS:
        raise MhaError(f"{option} {name!r} is not one of {', '.join(IMAGE_FORMATS)}")
    return fmt


def save_figure(fig: Figure, path: Path, *, dpi: int = 100, **savefig: Any) -> Path:
    """Write `fig` to `path` in the format its extension names; a reader never sees half a file.

    SVG text stays text (not glyph paths), so the words in a picture can be searched and tested.
    """
    fmt = format_of_path(path)
    options = dict(savefig)
    if fmt == "png" and not options:
        pixels = _agg_pixels(fig, dpi)
        if pixels is not None:  # matplotlib drew it; `png` encodes it (faster than Pillow)
            import matplotlib

            from mha_cli.render.png import write_png

            software = f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/"
            with atomic_path(Path(path)) as tmp, open(tmp, "wb") as out:
                write_png(out, pixels, dpi, {"Software": software})  # as savefig tags it
            return Path(path)
    if fmt == "png":  # zlib's fastest level: 4-5x faster on big noisy images, ~10% larger
        options.setdefault("pil_kwargs", {"compress_level": 1})
    with atomic_path(Path(path)) as tmp:
        # The temporary name ends in .tmp, so the format must be named, not guessed.
        import matplotlib

        with matplotlib.rc_context({"svg.fonttype": "none"}):
            fig.savefig(tmp, format=fmt, dpi=dpi, **options)
    return Path(path)


def _agg_pixels(fig: Figure, dpi: int) -> Any:
    """The figure drawn by `savefig` at `dpi`: Agg's (height, width, 4) uint8 RGBA buffer, as
    matplotlib's own "rgba" format hands it to the file; None if it came without its shape."""
    import io

    import numpy as np

    class Pixels(io.BytesIO):
        """A file that keeps the buffer written to it as an array of its shape."""

        array: Any = None

        def write(self, data: Any) -> int:
            self.array = np.array(memoryview(data), dtype=np.uint8)  # a copy: the canvas may go
            return self.array.nbytes

    pixels = Pixels()
    fig.savefig(pixels, format="rgba", dpi=dpi)  # one draw, as savefig(png) makes it
    array = pixels.array
    return array if array is not None and array.ndim == 3 and array.shape[2] == 4 else None
