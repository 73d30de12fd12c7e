"""Import the probe's own modules out of its zipapp, compiling each one once.

zipimport (the pure-Python one of 3.8 to 3.13 at least) compiles a source-only
module twice: once while building its spec (``spec_from_loader`` asks
``zipimporter.get_filename``, which runs ``_get_module_code``) and again in
``exec_module``. The zipapp ships sources only (the host's Python version is not
known in advance), so compiling is most of the probe's start-up after the
interpreter's own: measured with cProfile on python3.11, 22 ``compile`` calls for
11 modules, about 8 ms of CPU wasted on every host in every round.

:func:`install` puts a finder in front of zipimport for this package only; it
reads the source with the archive's own ``zipimporter.get_data`` and compiles it
once. Nothing else changes: same archive, same files, and when the probe does not
run from a zip (tests, an unpacked copy) :func:`install` does nothing.
"""

import sys

# The spec class without importing importlib: this module's own spec is one.
_ModuleSpec = type(__spec__)
# The bytecode magic of this interpreter, without importing importlib.util.
_MAGIC = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)


class ZipSourceFinder(object):
    """Finds and loads ``<package>.<name>`` from ``<package>/<name>.py`` in the archive."""

    def __init__(self, importer, package):
        self.importer = importer
        self.package = package
        self.sources = {}

    def find_spec(self, fullname, path=None, target=None):
        parent, _, name = fullname.rpartition(".")
        if parent != self.package or not name:
            return None
        stem = "%s/%s" % (self.package.replace(".", "/"), name)
        code = self._bytecode(stem)
        if code is None:
            try:
                code = self.importer.get_data(stem + ".py")
            except OSError:
                return None
        self.sources[fullname] = code
        spec = _ModuleSpec(fullname, self, origin="%s/%s.py" % (self.importer.archive, stem))
        spec.has_location = True  # sets __file__, as zipimport does
        return spec

    def _bytecode(self, stem):
        """The module's code from ``<stem>.<cache tag>.pyc`` when the archive has one
        for exactly this interpreter (same cache tag and magic number), else None."""
        tag = getattr(sys.implementation, "cache_tag", None)
        if not tag or not _MAGIC:
            return None
        try:
            data = self.importer.get_data("%s.%s.pyc" % (stem, tag))
        except OSError:
            return None
        if len(data) <= 16 or data[:4] != _MAGIC:
            return None
        try:
            import marshal

            return marshal.loads(data[16:])
        except (EOFError, ValueError, TypeError):
            return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        code = self.sources.pop(module.__name__)
        if isinstance(code, bytes):
            code = compile(code, module.__spec__.origin, "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def get_source(self, fullname):
        """For tracebacks (linecache)."""
        relpath = "%s/%s.py" % (self.package.replace(".", "/"), fullname.rpartition(".")[2])
        return self.importer.get_data(relpath).decode("utf-8")


def install():
    """Serve the rest of this package through :class:`ZipSourceFinder` when run from a zip."""
    importer = globals().get("__loader__")
    if not hasattr(importer, "archive") or not hasattr(importer, "get_data"):
        return False
    for finder in sys.meta_path:
        if isinstance(finder, ZipSourceFinder):
            return True
    sys.meta_path.insert(0, ZipSourceFinder(importer, __package__))
    return True
