"""The networks of the family, by the ``type`` name their ``network_*`` options give. The BasicSR adapter
(``srdiff_basicsr.plugin``) registers them in BasicSR's ARCH_REGISTRY; the method layer builds from this table."""
from srdiff_basicsr.archs.ecdp_unet_arch import ECDPUNet
from srdiff_basicsr.archs.rrdb_encoder_arch import SRDiffRRDBNet
from srdiff_basicsr.archs.srdiff_unet_arch import SRDiffUNet

ARCHS = {cls.__name__: cls for cls in (SRDiffUNet, ECDPUNet, SRDiffRRDBNet)}

__all__ = ['ARCHS', 'ECDPUNet', 'SRDiffRRDBNet', 'SRDiffUNet']
