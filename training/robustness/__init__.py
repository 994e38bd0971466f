"""Robustness evaluation against the exported graph: attacks crafted on the parity-checked PyTorch
twin, scored by ONNX Runtime on the graph a user deploys."""
