"""Model loading and running: registry, encoder, summarisers, sentiment, ONNX."""
