import math
from contextlib import nullcontext
from os import path as osp

import torch
from basicsr.archs import build_network
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY
from torch.nn import functional as F
from torch.utils.data import default_collate
from tqdm import tqdm

from srdiff_basicsr.data import DatasetError
from srdiff_basicsr.diffusion.noise import randn
from srdiff_basicsr.diffusion.samplers import ddpm_sample, run_sampler
from srdiff_basicsr.diffusion.tiling import TiledDenoiser, TileError, check_tile_options
from srdiff_basicsr.diffusion.schedule import GaussianDiffusion
from srdiff_basicsr.distributed import gather_to_all
from srdiff_basicsr.models.evaluation import (apply_protocol, describe_protocol, score_samples, write_metrics_csv,
                                              write_summary)
from srdiff_basicsr.models.options import (DIFFUSION_DEFAULTS, OptionsError, check_options, check_sampler_options,
                                           describe_sampler)
from srdiff_basicsr.models.weights import load_weights
from srdiff_basicsr.ops.colour import COLOUR_FIXES, colour_fix
from srdiff_basicsr.ops.resize import imresize

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


@MODEL_REGISTRY.register()
class SRDiffModel(SRModel):
    """SRDiff: diffusion of the residual HR - bicubic(LR), conditioned on a frozen RRDB encoder.

    Options (besides BasicSR's):
        network_g: the noise predictor (``SRDiffUNet``), trained with ``train.optim_g``,
            ``train.scheduler``, ``train.ema_decay``.
        network_encoder: the LR encoder (``SRDiffRRDBNet``), frozen, loaded from
            ``path.pretrain_network_encoder`` (``param_key_encoder``, ``strict_load_encoder``),
            e.g. the ``net_g`` of an encoder pretraining run. It is saved with every checkpoint, so
            the experiment folder alone is enough to test or resume.
        diffusion: schedule (cosine), timesteps (100), cosine_s (0.008), res_rescale (2),
            clip_x0 (true), loss (l1 | l2).
        val.seed: seed of the sampling noise in validation/test (default: manual_seed); image i of a
            dataset is sampled with seed + i, so every validation draws the same samples.
        val.protocol: paper (RGB, no border crop) | basicsr (Y channel, crop_border = scale), set on
            every metric that has those options; the protocol used is logged and written either way.
        val.num_samples: SR samples drawn per LR image (default 1). Every metric is averaged over
            the samples (metrics receive the LR as ``lq`` too, for LR-PSNR); with 2 or more, ``sigma``
            is reported: the standard deviation across samples of each pixel (and channel) of the
            8-bit SR images, on the 0-255 scale (population std), averaged over pixels and images.
        val.sampler, val.tile, val.colour_fix: how samples are drawn (see ``set_sampling``);
        val.precision, val.channels_last, val.compile: speed options (see ``set_execution``).

    Data path: images are [0, 1] as everywhere in BasicSR; the diffusion works in [-1, 1] like the
    official code. ``lr_up`` is MATLAB-style bicubic of the LR batch, computed here, so any paired
    dataset works unchanged. (The official data loader divided by 256 instead of 255 before
    making lr_up; here lr_up is the plain bicubic of the LR image.)
    """

    def __init__(self, opt):
        check_options(opt)
        self.diffusion_opt = {**DIFFUSION_DEFAULTS, **(opt.get('diffusion') or {})}
        super().__init__(opt)  # builds and loads net_g, sets up training
        self.net_encoder = build_network(opt['network_encoder']).to(self.device)
        encoder_path = opt['path']['pretrain_network_encoder']
        load_weights(self.net_encoder, encoder_path, opt['path'].get('param_key_encoder', 'params'),
                     opt['path'].get('strict_load_encoder', True), option='path.pretrain_network_encoder')
        get_root_logger().info(f'Loaded the frozen encoder from {encoder_path}')
        self.net_encoder.eval().requires_grad_(False)
        self.diffusion = GaussianDiffusion.from_options(self.diffusion_opt['schedule'],
                                                        self.diffusion_opt['timesteps'],
                                                        self.diffusion_opt['cosine_s']).to(self.device)
        self.res_rescale = self.diffusion_opt['res_rescale']
        val_opt = opt.get('val') or {}
        self.step_callback = None
        self.set_sampling(val_opt.get('sampler'), val_opt.get('tile'), val_opt.get('colour_fix', 'none'))
        self.set_execution(val_opt.get('precision', 'fp32'), val_opt.get('channels_last', False),
                           val_opt.get('compile', False))

    def init_training_settings(self):
        self.net_g.train()
        train_opt = self.opt['train']
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                self.load_network(self.net_g_ema, load_path, self.opt['path'].get('strict_load_g', True), 'params_ema')
            else:
                self.model_ema(0)
            self.net_g_ema.eval()
        loss = self.diffusion_opt['loss']
        self.noise_loss = {'l1': F.l1_loss, 'l2': F.mse_loss}[loss]
        self.setup_optimizers()
        self.setup_schedulers()

    # data ------------------------------------------------------------------------------------
    def load_network(self, net, load_path, strict=True, param_key='params'):
        """BasicSR's loader, with an error that names the keys and shapes that do not fit."""
        load_weights(self.get_bare_model(net), load_path, param_key, strict, option=f'weights of {type(net).__name__}')

    def feed_data(self, data):
        self.lq = data['lq'].to(self.device)
        scale = self.opt['scale']
        if 'gt' in data:
            self.gt = data['gt'].to(self.device)
            if self.gt.shape[-2:] != (self.lq.shape[-2] * scale, self.lq.shape[-1] * scale):
                where = f' ({data["lq_path"][0]}, {data["gt_path"][0]})' if 'lq_path' in data else ''
                raise DatasetError(f'HR size {tuple(self.gt.shape[-2:])} is not scale {scale} x LR size '
                                 f'{tuple(self.lq.shape[-2:])}{where}')
        self.lr_up = imresize(self.lq, scale)

    def residual(self, hr, lr_up):
        """x0 = clamp((hr - lr_up) * res_rescale, -1, 1), images in [-1, 1] as in the paper."""
        return (((hr * 2 - 1) - (lr_up * 2 - 1)) * self.res_rescale).clamp(-1, 1)

    def image_from_residual(self, x0, lr_up):
        """sr = lr_up + clamp(x0, -1, 1) / res_rescale, back to [0, 1]."""
        sr = (lr_up * 2 - 1) + x0.clamp(-1, 1) / self.res_rescale
        return ((sr + 1) / 2).clamp(0, 1)

    # training --------------------------------------------------------------------------------
    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        with torch.no_grad():
            features = self.net_encoder.features(self.lq)
        cond = self.get_bare_model(self.net_g).project_condition(features)
        x0 = self.residual(self.gt, self.lr_up)
        t = torch.randint(0, self.diffusion.num_timesteps, (x0.shape[0], ), device=self.device)
        eps = torch.randn_like(x0)
        eps_pred = self.net_g(self.diffusion.q_sample(x0, t, eps), t, cond)
        l_noise = self.noise_loss(eps_pred, eps)
        l_noise.backward()
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict({'l_noise': l_noise})
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    # sampling --------------------------------------------------------------------------------
    def set_sampling(self, sampler=None, tile=None, colour_fix='none', where='val'):
        """How ``sample`` draws: ``sampler`` options (type ddpm | ddim | dpmpp_2m | ode and theirs),
        ``tile`` ({size, overlap, batch} in HR pixels, or None for the whole image at once) and
        ``colour_fix`` (none | adain | wavelet); errors name ``where.<option>``."""
        self.sampler_opt = check_sampler_options(sampler, self.diffusion.num_timesteps, f'{where}.sampler')
        divisor = self.get_bare_model(self.net_g).divisor
        self.tile_opt = None
        if tile is not None:
            unknown = sorted(set(tile) - {'size', 'overlap', 'batch'})
            if unknown:
                raise OptionsError(f'{where}.tile: unknown option(s) {unknown}; known: batch, overlap, size')
            self.tile_opt = {'overlap': 0, 'batch': 1, **tile}
            if 'size' not in tile:
                raise OptionsError(f'{where}.tile.size: missing (tile side in HR pixels)')
            try:
                check_tile_options(self.tile_opt['size'], self.tile_opt['overlap'], self.opt['scale'], divisor,
                                   self.tile_opt['batch'], where=f'{where}.tile')
            except TileError as error:
                raise OptionsError(str(error)) from None
        if colour_fix not in COLOUR_FIXES:
            raise OptionsError(f'{where}.colour_fix: must be one of {COLOUR_FIXES}, got {colour_fix!r}')
        self.colour_fix = colour_fix

    def set_execution(self, precision='fp32', channels_last=False, compile=False, where='val'):
        """Speed options of ``sample``: autocast ``precision`` (fp32 | bf16 | fp16, fp16 on CUDA only; the
        sampler's state stays float32), the U-Net in ``channels_last`` memory format (faster convolutions
        on recent GPUs), and ``compile`` (torch.compile of the U-Net, once per network)."""
        if precision not in PRECISIONS:
            raise OptionsError(f'{where}.precision: must be one of {sorted(PRECISIONS)}, got {precision!r}')
        if precision == 'fp16' and self.device.type != 'cuda':
            raise OptionsError(f'{where}.precision: fp16 needs a CUDA device (bf16 works on CPU)')
        self.precision, self.channels_last, self.compile = precision, bool(channels_last), bool(compile)
        self._compiled = {}

    def _sampling_network(self):
        """The U-Net to sample with (EMA when kept), in eval mode, as ``set_execution`` asks."""
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        if self.channels_last:
            net.to(memory_format=torch.channels_last)
        run = net
        if self.compile:
            if id(net) not in self._compiled:
                self._compiled[id(net)] = torch.compile(net)
            run = self._compiled[id(net)]
        if self.channels_last:
            return net, lambda x, t, cond: run(x.contiguous(memory_format=torch.channels_last), t, cond)
        return net, run

    @torch.no_grad()
    def sample(self, lq, generator=None, start=None):
        """SR images in [0, 1] for an LR batch in [0, 1] of any size, by the sampler, tiling and colour
        fix of ``set_sampling`` (from ``val``: the 100-step DDPM, whole image, no fix by default).
        ``start`` = (x_t, t) continues the paper's DDPM from the residual latent x_t at step t instead
        (the manipulations of ``srdiff_basicsr.manipulation``).
        The number of network evaluations is left in ``self.nfe``; ``self.step_callback(nfe)``, when
        set, is called before each."""
        module, net = self._sampling_network()
        was_training = module.training
        module.eval()
        bare = self.get_bare_model(module)
        scale = self.opt['scale']
        h, w = lq.shape[-2:]
        # the U-Net halves the HR size len(dim_mults) - 1 times: pad the LR so the HR divides, and so
        # that its coarsest level keeps the 2 pixels its reflection padding needs (tiny images)
        multiple = bare.divisor // math.gcd(bare.divisor, scale)
        min_lr = -(-2 * bare.divisor // scale)
        pad_h, pad_w = (max(n, min_lr) + (-max(n, min_lr)) % multiple - n for n in (h, w))
        if pad_h or pad_w:
            lq = F.pad(lq, (0, pad_w, 0, pad_h), mode='replicate')
        lr_up = imresize(lq, scale)
        precision = PRECISIONS[self.precision]
        with nullcontext() if precision is None else torch.autocast(self.device.type, precision):
            features = self.net_encoder.features(lq)
            if self.tile_opt is None:
                cond = bare.project_condition(features)
                denoise = lambda x_t, t: net(x_t, t, cond)  # noqa: E731
            else:
                denoise = TiledDenoiser(net, bare.project_condition, features, scale, self.tile_opt['size'],
                                        self.tile_opt['overlap'], bare.divisor, self.tile_opt['batch'])
            self.nfe = 0

            def counted(x_t, t):
                self.nfe += 1
                if self.step_callback is not None:
                    self.step_callback(self.nfe)
                return denoise(x_t, t).to(x_t.dtype)  # the sampler's state stays in full precision

            clip_x0 = self.diffusion_opt['clip_x0']
            if start is None:
                x_T = randn(lr_up.shape, generator, lr_up.device, lr_up.dtype)
                x0 = run_sampler(self.sampler_opt, counted, self.diffusion, x_T, generator, clip_x0)
            else:
                x_t, t_start = start
                x_t = F.pad(x_t, (0, pad_w * scale, 0, pad_h * scale), mode='replicate')
                x0 = ddpm_sample(counted, self.diffusion, x_t, generator=generator, clip_x0=clip_x0, t_start=t_start)
        module.train(was_training)
        crop = (..., slice(0, h * scale), slice(0, w * scale))
        return colour_fix(self.image_from_residual(x0, lr_up)[crop], lr_up[crop].clamp(0, 1), self.colour_fix)

    def test(self):
        self.output = self.sample(self.lq)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.evaluate(dataloader, current_iter, tb_logger, save_img)

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.evaluate(dataloader, current_iter, tb_logger, save_img)  # every rank takes a share of the images

    def evaluate(self, dataloader, current_iter, tb_logger, save_img):
        """BasicSR's validation loop, plus: ``val.num_samples`` samples per image and ``sigma``,
        ``val.protocol``, the images split across ranks (rank r takes images r, r + world_size, ...;
        the metrics are gathered, so the numbers do not depend on the number of processes), and, in a
        test run, per-image metrics and a summary in ``results/<name>/``."""
        val_opt = self.opt['val']
        dataset, scale = dataloader.dataset, self.opt['scale']
        dataset_name = dataset.opt['name']
        metrics_opt = val_opt.get('metrics') or {}
        if val_opt.get('protocol'):
            metrics_opt = apply_protocol(metrics_opt, val_opt['protocol'], scale)
        metrics_opt = {name: {'device': str(self.device), **opt} if opt.get('type') == 'calculate_lpips' else opt
                       for name, opt in metrics_opt.items()}  # LPIPS on the model's device unless told
        num_samples = val_opt.get('num_samples', 1)
        seed = val_opt.get('seed', self.opt.get('manual_seed'))
        rank, world_size = get_dist_info()
        indices = range(rank, len(dataset), world_size)
        pbar = tqdm(total=len(indices), unit='image') if val_opt.get('pbar', False) and rank == 0 else None
        records = []
        for index in indices:
            # noise seeded per image: the same samples whatever the split across ranks
            generator = None if seed is None else torch.Generator(self.device).manual_seed(seed + index)
            records.append(self._evaluate_image(default_collate([dataset[index]]), index, generator, metrics_opt,
                                                num_samples, dataset_name, current_iter, save_img))
            if pbar:
                pbar.update(1)
                pbar.set_description(f'Test {records[-1]["image"]}')
        if pbar:
            pbar.close()
        records = sorted(gather_to_all(records), key=lambda record: record['index'])
        columns = list(metrics_opt) + (['sigma'] if num_samples > 1 else [])
        if not records or not columns:
            return
        self.metric_results = {column: sum(r[column] for r in records) / len(records) for column in columns}
        self._initialize_best_metric_results(dataset_name)
        if num_samples > 1:
            self.best_metric_results[dataset_name].setdefault('sigma', dict(better='higher', val=float('-inf'),
                                                                            iter=-1))
        for name, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, name, value, current_iter)
        protocol = describe_protocol(metrics_opt, scale)
        get_root_logger().info(f'Validation {dataset_name}: {len(records)} images x {num_samples} sample(s), '
                               f'protocol: {protocol}')
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
        if not self.opt['is_train'] and rank == 0:
            self._write_metrics(dataset_name, records, columns, protocol, num_samples, seed)

    def _evaluate_image(self, data, index, generator, metrics_opt, num_samples, dataset_name, current_iter,
                        save_img):
        """Metrics of one image, each averaged over its samples, and their sigma."""
        img_name = osp.splitext(osp.basename(data['lq_path'][0]))[0]
        self.feed_data(data)
        samples = self.sample(self.lq.expand(num_samples, -1, -1, -1), generator)
        sr_imgs = [tensor2img(sample) for sample in samples]
        hr_img = tensor2img(self.gt) if hasattr(self, 'gt') else None
        if hasattr(self, 'gt'):
            del self.gt
        if save_img:
            for k, sr_img in enumerate(sr_imgs):
                imwrite(sr_img, self._visualization_path(dataset_name, img_name, current_iter, k))
        return {'index': index, 'image': img_name, **score_samples(sr_imgs, metrics_opt, hr_img, tensor2img(self.lq))}

    def _write_metrics(self, dataset_name, records, columns, protocol, num_samples, seed):
        results = self.opt['path']['results_root']
        write_metrics_csv(osp.join(results, f'metrics_{dataset_name}.csv'), records, columns)
        lines = [f'protocol: {protocol}', f'images: {len(records)}', f'samples per image: {num_samples}',
                 f'sampler: {describe_sampler(self.sampler_opt, self.diffusion.num_timesteps)}, seed {seed}',
                 f"tiles: {self.tile_opt or 'none (whole image)'}, colour fix: {self.colour_fix}",
                 f"weights: {self.opt['path'].get('pretrain_network_g')}"]
        write_summary(osp.join(results, f'summary_{dataset_name}.md'), f"{self.opt['name']} on {dataset_name}",
                      lines, self.metric_results)

    def _visualization_path(self, dataset_name, img_name, current_iter, sample_index):
        """BasicSR's file names; samples after the first get ``_s<k>``."""
        extra = f'_s{sample_index}' if sample_index else ''
        if self.opt['is_train']:
            return osp.join(self.opt['path']['visualization'], img_name, f'{img_name}_{current_iter}{extra}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(self.opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}{extra}.png')

    def save(self, epoch, current_iter):
        self.save_network(self.net_encoder, 'net_encoder', current_iter)
        super().save(epoch, current_iter)  # net_g (+ ema), then the training state, written last
