"""The networks of the family, by the ``type`` name their ``network_*`` options give. The BasicSR adapter
(``srdiff_basicsr.plugin``) registers them in BasicSR's ARCH_REGISTRY; the method layer builds from this table."""
from srdiff_basicsr.archs.cfw_autoencoder_arch import CFWAutoencoder
from srdiff_basicsr.archs.ecdp_unet_arch import ECDPUNet
from srdiff_basicsr.archs.patchgan_discriminator_arch import PatchGANDiscriminator
from srdiff_basicsr.archs.rrdb_encoder_arch import SRDiffRRDBNet
from srdiff_basicsr.archs.srdiff_unet_arch import SRDiffUNet
from srdiff_basicsr.archs.stablesr_unet_arch import StableSRUNet
from srdiff_basicsr.archs.time_aware_encoder_arch import TimeAwareEncoder

ARCHS = {cls.__name__: cls for cls in (SRDiffUNet, ECDPUNet, SRDiffRRDBNet, StableSRUNet, TimeAwareEncoder,
                                       CFWAutoencoder, PatchGANDiscriminator)}

__all__ = ['ARCHS', 'CFWAutoencoder', 'ECDPUNet', 'PatchGANDiscriminator', 'SRDiffRRDBNet', 'SRDiffUNet',
           'StableSRUNet', 'TimeAwareEncoder']
