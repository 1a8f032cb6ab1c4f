"""Offline stand-ins for downloads the tests cannot make (pretrained weights, CIFAR-10)."""
