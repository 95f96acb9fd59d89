"""Pipeline configuration: pydantic models, file loading, environment overrides and errors."""

from config.errors import ConfigError, UserError
from config.loader import DEFAULT_CONFIG, EXAMPLES, config_dir, load_config

__all__ = ["ConfigError", "UserError", "DEFAULT_CONFIG", "EXAMPLES", "config_dir", "load_config"]
