"""Pyramidal TIFF output: the plan, downsampling, codecs, our BigTIFF writer, inspection.

Submodules are imported where used (numpy and imagecodecs are heavy).
"""
