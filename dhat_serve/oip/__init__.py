"""The Open Inference Protocol v2: its body codec, its REST routes, its gRPC service, model descriptions, OpenAPI.

Each protocol module decodes a request into ``dataplane.InferRequest``, calls the data plane, and encodes
its ``InferResult``; nothing here runs a model or counts a request itself.
"""
