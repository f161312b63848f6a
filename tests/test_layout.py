"""The package's shape: no import cycle, and the method layer free of BasicSR's model classes and loops."""
import ast

from tests.conftest import REPO

PACKAGE = REPO / 'srdiff_basicsr'


def module_name(path):
    parts = path.relative_to(REPO).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports(path, modules):
    """The package modules that ``path`` imports anywhere (lazy imports inside functions included), and the
    packages whose ``__init__`` such an import runs first: those of the imported module that are not packages of
    ``path`` itself (which are imported before it)."""
    own = set(ancestors(module_name(path)))
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import sub` imports the submodule sub when there is one, else pkg itself
            names = [f'{node.module}.{alias.name}' if f'{node.module}.{alias.name}' in modules else node.module
                     for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found | {package for name in found for package in ancestors(name) if package in modules} - own


def ancestors(name):
    parts = name.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts))]


def import_graph():
    paths = {module_name(path): path for path in PACKAGE.rglob('*.py')}
    return {name: imports(path, paths) - {name} for name, path in paths.items()}


def find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 'open':
                return stack[stack.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        state[node] = 'done'
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_walker_sees_a_cycle_when_there_is_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set(), 'c': {'a', 'b'}}) is None
    graph = import_graph()
    assert 'srdiff_basicsr.diffusion.samplers' in graph['srdiff_basicsr.pipeline']
    assert 'srdiff_basicsr.inference.command_line' in graph['srdiff_basicsr.inference.manipulation_cli']
    # importing models.objectives runs models/__init__ first, unless one is inside models already
    assert 'srdiff_basicsr.models' in graph['srdiff_basicsr.host.cli']
    assert 'srdiff_basicsr.models' not in graph['srdiff_basicsr.models.srdiff_model']


def test_no_import_cycle_in_the_package():
    assert find_cycle(import_graph()) is None


# the layers, by folder: the BasicSR adapter (its registered classes, BasicSR as the host) and its entry points;
# everything else (the method: archs, diffusion, ops, the pipeline; loading; conversion; inference) is BasicSR-free
ADAPTER_FOLDERS = ('models', 'data', 'metrics', 'losses', 'host')
ENTRY_POINTS = ('plugin.py', 'train.py', 'test.py')


def test_the_method_loading_conversion_and_inference_import_nothing_of_basicsr():
    """Every module outside the adapter's folders and entry points imports no BasicSR module (nor the adapter):
    registering with BasicSR and patching it is the adapter's job (``srdiff_basicsr.plugin``)."""
    method = [p for p in PACKAGE.rglob('*.py') if p.relative_to(PACKAGE).parts[0] not in ADAPTER_FOLDERS
              and p.relative_to(PACKAGE).as_posix() not in ENTRY_POINTS]
    assert {'pipeline.py', 'srdiff.py', 'model_folder.py', 'samplers.py', 'command_line.py'} <= {p.name for p in method}
    for path in method:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or '', *(f'{node.module}.{a.name}' for a in node.names)]
                     if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(('basicsr', 'srdiff_basicsr.plugin', 'srdiff_basicsr.train',
                                            'srdiff_basicsr.test', *(f'srdiff_basicsr.{f}' for f in ADAPTER_FOLDERS))), \
                    f'{path.relative_to(REPO)} imports {name}'


def test_nothing_in_the_package_replaces_torch_save():
    """Checkpoints go through ``checkpoints.write``; a global ``torch.save = ...`` would change every other
    program's saves too."""
    for path in PACKAGE.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    assert ast.unparse(target) != 'torch.save', f'{path.relative_to(REPO)} replaces torch.save'
    assert 'torch.save' in ast.unparse(ast.parse((PACKAGE / 'host' / 'checkpoints.py').read_text()))  # the walker sees code
