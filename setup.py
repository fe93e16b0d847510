from setuptools import Extension, setup

setup(
    # The compiled LZW encoder is an optional speed-up: if it does not build
    # (no compiler, no Python headers), the install goes on without it and
    # tifwriter_cli/tiff/lzw.py uses imagecodecs' encoder instead.
    ext_modules=[Extension('tifwriter_cli.tiff._speedups', ['tifwriter_cli/tiff/_speedups.c'], optional=True)],
)
