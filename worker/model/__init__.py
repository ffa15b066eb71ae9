"""The query generator behind one small interface, one module per backend."""

from worker.model.base import GenerationConfig, QueryGenerator

__all__ = ["GenerationConfig", "QueryGenerator", "load_generator"]


def load_generator(config: GenerationConfig) -> QueryGenerator:
    """Load the generator for ``config.backend``."""
    if config.backend == "torch":
        from worker.model.torch_backend import TorchGenerator

        return TorchGenerator.load(config)
    if config.backend == "ctranslate2":
        from worker.model.ctranslate2_backend import CTranslate2Generator

        return CTranslate2Generator.load(config)
    raise ValueError(
        f"unknown backend {config.backend!r}; choose one of: torch, ctranslate2"
    )
