"""IACSeg Slicer module logic that needs no Slicer: parameters, engine process, results, review, batch.

Everything here imports with plain Python + numpy (+ the ``iacseg`` engine where results are read), so it is
tested with pytest outside Slicer. The Slicer-facing pieces are ``scene`` (MRML nodes) and
``slicer_launcher`` (``slicer.util.launchConsoleProcess``); only those import ``slicer``/``qt``/``vtk``.
"""
