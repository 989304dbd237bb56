"""Serving (the ``serve`` extra): a KServe predictor for the ONNX forecaster.

``tensors`` is framework-free request validation; ``predictor`` is the ``kserve.Model``;
``server`` starts KServe's ``ModelServer``. ``mkrich serve`` / ``python -m make_us_rich.serving``.
"""
