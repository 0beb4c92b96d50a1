"""Using a trained model: fast inference, export, evaluation and prediction.

``optimize`` (``optimize_for_inference``: BN folding, channels_last, compiled, bf16, int8 via
``quantize``, ONNX Runtime via ``ort``), ``freezing`` (inductor with freezing), ``export``
(ONNX, torch.export, TorchScript), ``loading`` (a name or a run folder becomes a model),
``inputs`` (a model's pre-processing and class names), ``evaluation`` and ``prediction``.
"""
