"""charforge: an AI character-art studio on your own machine.

`charforge.load(spec)` (alias `charforge.from_pretrained`) returns a generator bundle from a Hub-style
folder (`charforge export hf`), a shipped name, a .safetensors file or a run folder, offline. Heavy
libraries load only when it is called, so `import charforge` stays light.
"""

__version__ = "0.1.0"


def load(spec=None, *, backend: str = "torch", device: str = "auto"):
    """A generator bundle: see `charforge.hub.load`."""
    from charforge.hub import load as _load

    return _load(spec, backend=backend, device=device)


def from_pretrained(spec=None, *, backend: str = "torch", device: str = "auto"):
    """Alias of `load`, under the name the Hugging Face libraries use. Never downloads."""
    return load(spec, backend=backend, device=device)
