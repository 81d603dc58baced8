"""Several networks in one design: the stress tests' way to share one simulator build."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from .top import NetworkTop

__all__ = ["BatchTop"]


class BatchTop(wiring.Component):
    """Several networks in one design, for stress tests that must not pay a simulator
    compile per network (a Verilator build costs ~10 s of fixed C++ work however small the
    design is, while simulating a tiny network costs milliseconds).

    Network ``k`` is a ``NetworkTop(nets[k], parallels[k], stall_points=True)`` whose every
    port appears with the prefix ``n{k}_`` (``n0_spikes_in__valid``, ``n1_tap_0__payload``,
    ``n2_stall``, ...); ``clk`` and ``rst`` are shared. The networks are independent: a
    testbench drives one at a time and leaves the others idle.
    """

    def __init__(self, nets, parallels):
        if len(nets) != len(parallels) or not nets:
            raise ValueError("BatchTop needs one parallelism per network, and a network")
        self.tops = [NetworkTop(net, p, stall_points=True) for net, p in zip(nets, parallels)]
        members = {}
        for k, top in enumerate(self.tops):
            for name, member in top.signature.members.items():
                members[f"n{k}_{name}"] = member
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        for k, top in enumerate(self.tops):
            m.submodules[f"net{k}"] = top
            for name, member in top.signature.members.items():
                outer, inner = getattr(self, f"n{k}_{name}"), getattr(top, name)
                if member.is_signature:
                    if member.flow == In:
                        wiring.connect(m, wiring.flipped(outer), inner)
                    else:
                        wiring.connect(m, inner, wiring.flipped(outer))
                elif member.flow == In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m
