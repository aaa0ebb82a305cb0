"""The AH half of an AH+ESP bundle (``ChildSaInfo.ah``) as the data plane installs it."""

from __future__ import annotations

from snakeswan.config.model import ChildConfig
from snakeswan.ike.events import ChildSaInfo, SaKeys
from snakeswan.ipsec import SaParams

AH = 51


def bundle_params(info: ChildSaInfo, child: ChildConfig) -> tuple[SaParams, SaParams] | None:
    """The (inbound, outbound) AH SAs of an AH+ESP bundle: transport mode over the ESP packet,
    without limits of their own (the bundle lives and expires with its ESP SAs)."""
    ah = info.ah
    if ah is None:
        return None
    window = max(child.replay_window, 32)

    def one(spi: int, keys: SaKeys) -> SaParams:
        return SaParams(
            spi=spi,
            protocol=AH,
            transform_id=ah.transform_id,
            key_length=None,
            auth=ah.auth,
            encryption_key=b"",
            integrity_key=keys.integrity,
            local=info.local,
            remote=info.remote,
            mode="transport",
            replay_window=window,
        )

    return one(ah.spi_in, ah.keys_in), one(ah.spi_out, ah.keys_out)
