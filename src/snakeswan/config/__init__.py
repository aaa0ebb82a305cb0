"""Configuration: the model the engine runs on (``model``) and the TOML loader (``loader``).

``config`` imports only ``snakeswan.errors`` and ``snakeswan.wire.enums`` from snakeswan.
"""

from snakeswan.config.durations import format_duration, parse_bytes, parse_duration
from snakeswan.config.identity import ANY_IDENTITY, ID_ANY, Identity
from snakeswan.config.loader import decode_secret, load_config, parse_config
from snakeswan.config.model import (
    DEFAULT_ESP_PROPOSALS,
    DEFAULT_IKE_PROPOSALS,
    AuthConfig,
    ChildConfig,
    ChildProposal,
    Config,
    ConnectionConfig,
    DaemonConfig,
    IkeProposal,
    Pool,
    PskSecret,
    Secrets,
    XauthSecret,
)
from snakeswan.config.proposals import (
    DEFAULT_AH_PROPOSALS,
    format_child_proposal,
    format_ike_proposal,
    parse_ah_proposal,
    parse_esp_proposal,
    parse_ike_proposal,
)
from snakeswan.config.traffic import IPAddress, IPNetwork, TrafficSelector

__all__ = [
    "ANY_IDENTITY",
    "DEFAULT_AH_PROPOSALS",
    "DEFAULT_ESP_PROPOSALS",
    "DEFAULT_IKE_PROPOSALS",
    "ID_ANY",
    "AuthConfig",
    "ChildConfig",
    "ChildProposal",
    "Config",
    "ConnectionConfig",
    "DaemonConfig",
    "IPAddress",
    "IPNetwork",
    "Identity",
    "IkeProposal",
    "Pool",
    "PskSecret",
    "Secrets",
    "TrafficSelector",
    "XauthSecret",
    "decode_secret",
    "format_child_proposal",
    "format_duration",
    "format_ike_proposal",
    "load_config",
    "parse_ah_proposal",
    "parse_bytes",
    "parse_config",
    "parse_duration",
    "parse_esp_proposal",
    "parse_ike_proposal",
]
