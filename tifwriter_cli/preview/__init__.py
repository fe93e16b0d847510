"""PNG previews of a staging file or a TIFF, optionally over the slide.

The picture is sampled by nearest neighbour at pixel centres: picture pixel
``j`` (of ``n``) shows source pixel ``floor((j + 0.5) * source_size / n)``.
Nearest never invents a value, which is what labels need, and it is
honest for the other kinds too. Nothing is ever read whole:

* a staging file is read in bands of rows through
  :meth:`StagingSnapshot.read_region`, at most :data:`BAND_BYTES` at a
  time, keeping only the sampled rows and columns of each band, so a
  100k x 100k canvas previews in bounded memory (it takes a while);
* a TIFF is read from the smallest pyramid level whose long side is at
  least the picture's, a tile at a time (:mod:`tifwriter_cli.tiff.read`).

Colours:

* labels: a fixed colour per class (:data:`LABEL_PALETTE`, 256 entries:
  0 dark grey, 1 red, 2 green, 3 blue, 4 yellow, ..., the 20 distinct
  colours of Sasha Trubetskoy's list, then generated hues), the same in
  every file; classes 256 and up reuse entries 1..255. A legend strip on
  the right lists the classes present in the picture.
* probability (1 channel): viridis over the dtype's range (0..1 for
  floats, clipped), with a colour bar.
* image: RGB as is, RGBA composited over white, 16/32-bit scaled to 8.
* several channels that are not an image (2, 5, ... channels, or scores
  of a probability/labels canvas): the argmax channel, shown as labels.

With ``overlay`` the picture is blended over the slide: class 0 and the
canvas fill value are left transparent so the tissue shows through.
Alignment follows :mod:`tifwriter_cli.slide`: canvas pixel (cx, cy) covers
slide level-0 pixels ``[cx*D, (cx+1)*D)`` (D = the canvas' slide
downsample).

Modules: :mod:`.render` (render_preview, save_png), :mod:`.sources` (what
is read: staging file or TIFF), :mod:`.sampling` (which pixels), :mod:`.colours`
(palette, viridis, samples -> RGB), :mod:`.legend` (class swatches, colour
bar) and :mod:`.overlay` (blending over the slide).
"""

from .colours import LABEL_PALETTE, VIRIDIS, label_colours
from .render import PreviewImage, render_preview, save_png
from .sampling import picture_size, sample_positions

__all__ = [
    'PreviewImage',
    'render_preview',
    'save_png',
    'LABEL_PALETTE',
    'VIRIDIS',
    'label_colours',
    'sample_positions',
    'picture_size',
]
