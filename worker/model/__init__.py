"""The query generator behind one small interface, one module per backend."""

from worker.model.base import GenerationConfig, QueryGenerator

__all__ = ["GenerationConfig", "QueryGenerator", "load_generator"]


def load_generator(config: GenerationConfig) -> QueryGenerator:
    """Load the generator for ``config.backend``."""
    if config.backend == "torch":
        from worker.model.torch_backend import TorchGenerator

        return TorchGenerator.load(config)
    raise ValueError(f"unknown backend {config.backend!r}; choose one of: torch")
