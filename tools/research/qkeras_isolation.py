"""Use hgq2's QKeras-compat layers without leaving hgq.layers patched.

`import qkeras.qlayers` (hgq2's shim) REPLACES `__init__` of every class in hgq.layers (QDense, QConv2D, ...,
and hgq.quantizer.Quantizer as QActivation) *in place*. Afterwards, native `hgq.layers.QDense(...)` silently gets
DummyQuantizer kernels, enable_iq=False and enable_ebops=False. The import patches only once, so we import it
once with a snapshot around it, keep both versions, and swap them in a context manager.
"""
import sys
from contextlib import contextmanager

import hgq.layers as _L
from hgq.layers.core.base import QLayerBase as _QLB

_MISSING = object()
_ORIG = _PATCHED = None


def _classes():
    return [o for o in vars(_L).values() if isinstance(o, type) and issubclass(o, (_QLB, _L.Quantizer))]


def _apply(table):
    for cls, init in table.items():
        if init is _MISSING:
            if '__init__' in cls.__dict__:
                delattr(cls, '__init__')
        else:
            cls.__init__ = init


def _ensure_loaded():
    global _ORIG, _PATCHED
    if _ORIG is not None:
        return
    if 'qkeras.qlayers' in sys.modules:
        raise RuntimeError('qkeras.qlayers was imported before qkeras_isolation: hgq.layers already patched')
    orig = {c: c.__dict__.get('__init__', _MISSING) for c in _classes()}
    import qkeras.qlayers  # noqa: F401  (patches)
    _PATCHED = {c: c.__dict__.get('__init__', _MISSING) for c in orig}
    _ORIG = orig
    _apply(_ORIG)  # restore native behaviour immediately


@contextmanager
def qkeras_style():
    """Inside: hgq.layers / qkeras.qlayers constructors take QKeras kwargs (kernel_quantizer=...)."""
    _ensure_loaded()
    _apply(_PATCHED)
    try:
        import qkeras.qlayers as QL
        yield QL
    finally:
        _apply(_ORIG)


_ensure_loaded()
