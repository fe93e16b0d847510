"""Pyramidal TIFF output: the plan, downsampling, codecs, our BigTIFF writer,
the readers' rules (compat), inspection.

Submodules are imported where used (numpy and imagecodecs are heavy).
"""
