"""Puts ``srdiff_basicsr_hook.pth`` at the root of the wheel, i.e. into site-packages, where Python runs it
at start-up (as pytest-cov ships its .pth). Editable installs need it too, hence a hook: hatchling's
``force-include`` option covers regular wheels only."""
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

HOOK = 'srdiff_basicsr_hook.pth'


class CustomBuildHook(BuildHookInterface):

    def initialize(self, version, build_data):
        build_data['force_include_editable' if version == 'editable' else 'force_include'][HOOK] = HOOK
