"""The model's real `config.json`: parsing, the built-in catalog, and where configs come from."""

from deepseek_operator.modelcfg.architecture import ModelArchitecture, QuantizationConfig, parse_hf_config
from deepseek_operator.modelcfg.catalog import catalog_config, catalog_names, load_catalog_architecture
from deepseek_operator.modelcfg.sources import ArchitectureContext, ArchitectureResult, resolve_architecture

__all__ = [
    "ArchitectureContext",
    "ArchitectureResult",
    "ModelArchitecture",
    "QuantizationConfig",
    "catalog_config",
    "catalog_names",
    "load_catalog_architecture",
    "parse_hf_config",
    "resolve_architecture",
]
