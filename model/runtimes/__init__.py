"""The ways the classifier's forward pass can run, beside PyTorch's own."""
