"""A software prefetch for numba kernels: ask for a row of an array before it is read.

The whole-grid deposit (:mod:`bigpaint.mesh.assign_planes`) copies each slab's particles
out of the positions in runs of a few particles per block of 255, so nearly every read is
a cache miss at a place the hardware prefetcher cannot guess. Naming those places a few
blocks ahead lets their misses overlap the copy of the blocks before: the copy of 16.8M
particles in 32 slabs took 0.097 s instead of 0.126 s on 2 threads (4 blocks ahead; 1, 2,
8 and 16 were slower), measured on the 2-core development machine.

numba has no prefetch of its own, so :func:`prefetch_row` emits LLVM's ``llvm.prefetch``
intrinsic, which compiles to the CPU's prefetch instruction (a hint: it never faults and
changes no result).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch_row"]


@intrinsic
def prefetch_row(typingctx, arr, i):
    """Prefetch the cache line holding ``arr[i, 0]`` of a 2-D array for reading (numba only).

    ``i`` must be a valid row: it is not bounds-checked, and a row outside the array would
    prefetch an arbitrary address (harmless to the result, but a wasted request).
    """
    if not isinstance(arr, types.Array) or arr.ndim != 2 or not isinstance(i, types.Integer):
        return None
    sig = types.void(arr, i)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(
            context, builder, aty, ary, [row, zero], wraparound=False, boundscheck=False
        )
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read (0), keep in all cache levels (3), data cache (1)
        flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        builder.call(fn, [builder.bitcast(ptr, i8p), *flags])
        return context.get_dummy_value()

    return sig, codegen
