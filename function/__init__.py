"""The entry `func build` packages: Knative Functions' Python scaffolding imports `function.new`."""

from function.func import new

__all__ = ["new"]
