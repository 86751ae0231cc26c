"""Generator checkpoints: RigStyle safetensors, NVlabs pickles (read without running their code) and
rosinality files; built-in generator names."""
