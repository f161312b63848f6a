"""The README's option tables, made from the code's tables (``diffusion`` and its spaces and schedules, the
samplers, tiles, degradations): each option's default and help as the code states them, so the README cannot drift
from the code.

    python scripts/option_tables.py            # print them
    python scripts/option_tables.py --write    # replace them in README.md (between the two markers)
"""
import argparse
import re
from os import path as osp

from srdiff_basicsr.data.degradation import DEGRADATIONS
from srdiff_basicsr.diffusion.samplers import SAMPLERS
from srdiff_basicsr.diffusion.schedule import SCHEDULES
from srdiff_basicsr.diffusion.spaces import SPACES
from srdiff_basicsr.diffusion.tiling import TILE_OPTIONS
from srdiff_basicsr.network_options import DIFFUSION_OPTIONS, timesteps_option
from srdiff_basicsr.option_spec import option_table

README = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'README.md')
BEGIN = '<!-- option tables: made by python scripts/option_tables.py --write, from the code -->'
END = '<!-- end of the option tables -->'


def tables():
    diffusion = [('`diffusion`', DIFFUSION_OPTIONS)]
    diffusion += [(f'`diffusion` with `space: {name}`', entry.options) for name, entry in SPACES.items()]
    diffusion += [(f'`diffusion` with `schedule: {name}`', {'timesteps': timesteps_option(name), **entry.options})
                  for name, entry in SCHEDULES.items()]
    samplers = [(f'`{name}`', sampler.options) for name, sampler in SAMPLERS.items() if sampler.options]
    return '\n'.join([BEGIN, '', '**`diffusion`** (options files, the manifest `model.yml`):', '',
                      option_table(diffusion), '',
                      '**Samplers** (`val.sampler: {type: <name>, ...}`, `srdiff-infer --sampler <name> --<option>`, '
                      '`pipe(lr, sampler=<name>, <option>=...)`):', '', option_table(samplers), '',
                      '**Tiles** (`val.tile`, `srdiff-infer --tile --tile-overlap --tile-batch`, `pipe.set_sampling(tile=...)`):',
                      '', option_table([('`tile`', TILE_OPTIONS)]), '',
                      '**Degradations made on the training batch** (`degradation: {type: <name>, ...}`):', '',
                      option_table([(f'`{name}`', stage.options) for name, stage in DEGRADATIONS.items()]), '', END])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--write', action='store_true', help='replace the tables in README.md')
    args = parser.parse_args()
    if not args.write:
        print(tables())
        return
    with open(README) as f:
        text = f.read()
    block = re.compile(re.escape(BEGIN) + '.*?' + re.escape(END), re.S)
    if not block.search(text):
        raise SystemExit(f'{README}: no {BEGIN} ... {END} block to replace')
    with open(README, 'w') as f:
        f.write(block.sub(lambda match: tables(), text))


if __name__ == '__main__':
    main()
