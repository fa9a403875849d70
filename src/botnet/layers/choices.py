"""What a model config may choose among, as plain names (no torch, so configs and the registry load without it)."""

ACTIVATION_NAMES = ("relu", "silu")  # the keys of activations.ACTIVATIONS
POS_ENCODINGS = ("relative", "absolute", "none")
BACKENDS = ("auto", "math", "sdpa", "chunked", "flex")
EXTEND_MODES = ("clip", "interpolate")
