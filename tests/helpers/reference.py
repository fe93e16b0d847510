"""A plain numpy reference model of the staged canvas.

Written independently of tifwriter_cli.staging.merge on purpose: a whole-canvas
array per rule, patches pasted pixel-exactly with Python-level clipping.
"""

from __future__ import annotations

import numpy


class ReferenceCanvas:
    def __init__(self, width, height, channels=1, dtype='uint8', fill=0, merge='overwrite'):
        self.width, self.height, self.channels = width, height, channels
        self.dtype = numpy.dtype(dtype)
        self.fill = fill
        self.merge = merge
        shape = (height, width, channels)
        self.values = numpy.full(shape, fill, dtype=self.dtype)
        self.written = numpy.zeros((height, width), dtype=bool)
        self.total = numpy.zeros(shape, dtype=numpy.float64)
        self.count = numpy.zeros((height, width), dtype=numpy.int64)

    def write(self, x, y, patch):
        patch = numpy.asarray(patch)
        if patch.ndim == 2:
            patch = patch[:, :, None]
        h, w = patch.shape[:2]
        for py in range(h):
            cy = y + py
            if not 0 <= cy < self.height:
                continue
            # columns inside the canvas for this row
            px0 = max(0, -x)
            px1 = min(w, self.width - x)
            if px1 <= px0:
                continue
            row = patch[py, px0:px1].astype(self.dtype)
            cols = slice(x + px0, x + px1)
            if self.merge == 'overwrite':
                self.values[cy, cols] = row
            elif self.merge in ('max', 'min'):
                pick = numpy.maximum if self.merge == 'max' else numpy.minimum
                old = self.values[cy, cols]
                was = self.written[cy, cols][:, None]
                self.values[cy, cols] = numpy.where(was, pick(old, row), row)
            elif self.merge == 'mean':
                self.total[cy, cols] += row
                self.count[cy, cols] += 1
            self.written[cy, cols] = True

    def result(self):
        if self.merge != 'mean':
            return self.values
        out = numpy.full(self.values.shape, self.fill, dtype=self.dtype)
        has = self.count > 0
        mean = self.total[has] / self.count[has][:, None]
        if self.dtype.kind != 'f':
            mean = numpy.rint(mean)
        out[has] = mean.astype(self.dtype)
        return out
