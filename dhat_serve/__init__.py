"""dhat-serve: serve and evaluate Dual Head Adversarial Training (DH-AT) classifiers.

This package is the torch-free runtime: robustness modes, the artifact manifest, ONNX Runtime
sessions and the BentoML service. ``training`` and ``export`` import it, never the reverse.
"""

__version__ = "0.1.0"
