"""A registry filled by the modules of one package: the package's plug-ins (input formats, mixing-law
forms, acquisitions) each register themselves as their module is imported, and the registry imports
every module of its package (all but ``base`` and private ones) once, on first use. A new plug-in is a
new module in the package; nothing else is edited."""

from __future__ import annotations

import importlib
import pkgutil


class PackageRegistry(dict):
    """Entries by name, registered by the modules of ``package`` (a dotted name)."""

    def __init__(self, package: str):
        super().__init__()
        self.package = package
        self._discovered = False

    def module_names(self) -> list[str]:
        """The package's plug-in modules, sorted, without importing them."""
        package = importlib.import_module(self.package)
        return sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "base" and not m.name.startswith("_"))

    def discover(self) -> PackageRegistry:
        """Import every plug-in module once (each registers its entries as it is imported); returns self."""
        if not self._discovered:
            self._discovered = True
            for name in self.module_names():
                importlib.import_module(f"{self.package}.{name}")
        return self

    def remove(self, name: str, what: str, listing) -> object:
        """Take ``name`` out of the registry and return it; an unknown name is a KeyError that names ``what``
        it is and lists ``listing()`` (the registered names, in the order the registry shows them)."""
        self.discover()
        if name not in self:
            raise KeyError(f"no {what} named '{name}'; registered: {', '.join(listing())}")
        return self.pop(name)
