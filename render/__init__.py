"""sefa-render: traversal videos and paired image datasets from pretrained GANs, with SeFa directions."""

__version__ = "0.1.0"
