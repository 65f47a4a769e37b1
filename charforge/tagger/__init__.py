"""The tagger: a small CNN that reads the schema's tags off an image (inference only; training is charforge.train.tagger)."""

from charforge.tagger.net import Tagger, TaggerConfig, TaggerNet, load_tagger

__all__ = ["Tagger", "TaggerConfig", "TaggerNet", "load_tagger"]
