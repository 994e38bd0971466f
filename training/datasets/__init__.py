"""One module per data source (digits, IDX files, CIFAR, image folders) and the splits they all return.

``training.data`` holds the registry that picks one by name; nothing here downloads.
"""
