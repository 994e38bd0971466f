"""The HTTP edge of a worker: the request guard, the API-key check, ``.npy`` predictions, the answers of the
typed APIs, the app mounted beside BentoML's routes, the SIGTERM drain and the log filter.
"""
