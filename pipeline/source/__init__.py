"""Source: raw PYSKL pickles, read safely (opcode scan, restricted unpickler) or made (`synth`)."""
