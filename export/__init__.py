"""torch -> ONNX for the three modes, the manifest, and proof each graph matches PyTorch."""
