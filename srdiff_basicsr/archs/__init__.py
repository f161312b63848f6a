from srdiff_basicsr.archs.ecdp_unet_arch import ECDPUNet
from srdiff_basicsr.archs.rrdb_encoder_arch import SRDiffRRDBNet
from srdiff_basicsr.archs.srdiff_unet_arch import SRDiffUNet

__all__ = ['ECDPUNet', 'SRDiffRRDBNet', 'SRDiffUNet']
