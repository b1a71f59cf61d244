"""ONNX export: the bundle a robot controller runs without torch."""
