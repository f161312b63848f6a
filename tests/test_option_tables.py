"""The README's option tables are the code's: made from the Option entries of the diffusion, space, schedule,
sampler, tile and degradation tables (scripts/option_tables.py), so a default or a help line changed in the code
shows here."""
from tests.conftest import REPO, load_script


def test_the_readmes_option_tables_are_made_from_the_code():
    script = load_script('option_tables.py')
    tables = script.tables()
    assert tables in (REPO / 'README.md').read_text(), 'run python scripts/option_tables.py --write'
    assert '| `diffusion` with `space: pixel_residual` | `res_rescale` | `2.0` |' in tables
    assert '| `ddim` | `eta` | `0.0` |' in tables and '| `ddim` | `spacing` | `trailing` |' in tables
    assert '| `tile` | `weights` | `gaussian` |' in tables and '| `realesrgan` | `queue_size` | `180` |' in tables
