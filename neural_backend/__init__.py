"""RigStyle's backend: wire protocol and client (no torch), StyleGAN2, refinement and the server.

Importing this package imports no torch; the torch-based modules are imported where they are used.
"""
