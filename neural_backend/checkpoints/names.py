"""Names of the built-in generators, usable wherever a checkpoint path is (torch-free: the CLI and the
demo check them without loading torch; ``neural_backend.checkpoints.io`` builds what they name)."""

FACE_PRIOR_NAME = "builtin-face-prior"  # the shipped 64 px face prior (docs/face-prior.md)
UNTRAINED_NAME = "builtin-untrained"  # nothing learned; for tests of the plumbing
BUILTIN_NAMES = (FACE_PRIOR_NAME, UNTRAINED_NAME)
