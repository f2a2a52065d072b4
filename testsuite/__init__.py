"""The test suite, one module per concern; ``python -m unittest tests.py`` runs all of it.

Not named ``tests`` because a package of that name would shadow ``tests.py``, the
command the README gives. One module runs on its own with, for example,
``python -m unittest testsuite.test_engine``.

======================  ================================================================
``common.py``           optional packages, small matrices, random cases, tolerances
``test_shapes.py``      parameter normalisation and the output-shape formula
``test_conv2d.py``      conv2d: hand-computed maps, the reference loops, oracles, errors
``test_engine.py``      the fast paths and their driver: strips, threads, memory, 'auto'
``test_layer.py``       the CNN layer: 4-D kernels, conv_transpose2d, conv2d_backward, tutorial
``test_nd.py``          conv1d, conv3d, transposes, gradients, axes=, 1-D pictures, against oracles
``test_fold_nd.py``     conv3d's 'fold' path: its ring of slices along depth, seams, threads, NaN
``test_image.py``       apply_filter_to_image, the kernels, agreement with OpenCV
``test_chunked.py``     Dask arrays, chunk by chunk: against in memory, a LocalCluster, example
``test_cli.py``         the filter command, end to end
``test_pictures.py``    plot_conv2d, animate_conv2d and their commands; shown in a notebook
``test_explorer.py``    explore(): its formula and calls, its widgets driven in-process
``test_notebook.py``    the teaching notebook, run in a real Jupyter kernel
``test_docs.py``        the docstring and README examples
``test_benchmarks.py``  the benchmark commands, on small settings: they run, write nothing unasked
======================  ================================================================

Tests that need an optional package (SciPy, PyTorch, OpenCV, ...) skip cleanly
when it is not installed; ``.ci/run`` installs them and sets
``CONVOLUTION_TEST_REQUIRE_OPTIONAL=1``, so that CI runs everything.
"""
