#!/usr/bin/env python3
"""Applies this project's one change to a copy of Candle's `src/backprop.rs`.

Candle's backward pass gives every tensor's gradient as

    let sum_grad = grads.or_insert(arg)?;      // a tensor of zeros, arg's shape
    *sum_grad = sum_grad.add(&arg_grad)?;      // zeros + the gradient, a new tensor

so each gradient costs a zero-filled allocation and an addition that reads two tensors
and writes a third. This rewrites each such pair as `grads.accumulate(arg, &arg_grad)?`,
which stores the first gradient as it is (checked and made contiguous, as the
addition's result was) and adds only the second and later ones. The subtractions and the sites with code
between the two lines stay as Candle wrote them.

    python3 vendor/patch_candle_backprop.py vendor/candle-core/src/backprop.rs

It refuses a file it has already patched, or one whose shape it no longer recognises.
"""

import re
import sys

PAIR = re.compile(
    r"let (\w+) = grads\.or_insert\(([^()]*)\)\?;\n\s*\*\1 = \1\.add\((.*)\)\?;?\n"
)

ACCUMULATE = '''    /// Adds `grad` to the gradient of `tensor`. The first gradient is stored as it is,
    /// not added to a tensor of zeros: that was a zero-fill and an addition over the
    /// whole tensor for every gradient. It is checked as the addition checked it (shape,
    /// dtype, device), and made contiguous as the sum was; but unlike the sum it may be
    /// a view that shares its storage with other tensors (the same gradient given to
    /// both sides of an addition, a slice of a larger output).
    fn accumulate(&mut self, tensor: &Tensor, grad: &Tensor) -> Result<()> {
        match self.0.entry(tensor.id()) {
            Entry::Occupied(mut entry) => {
                let sum = entry.get().add(grad)?;
                entry.insert(sum);
            }
            Entry::Vacant(entry) => {
                tensor.same_shape_binary_op(grad, "add")?;
                if tensor.dtype() != grad.dtype() {
                    Err(Error::DTypeMismatchBinaryOp {
                        lhs: tensor.dtype(),
                        rhs: grad.dtype(),
                        op: "add",
                    }
                    .bt())?
                }
                if !tensor.device().same_device(grad.device()) {
                    Err(Error::DeviceMismatchBinaryOp {
                        lhs: tensor.device().location(),
                        rhs: grad.device().location(),
                        op: "add",
                    }
                    .bt())?
                }
                entry.insert(grad.contiguous()?);
            }
        }
        Ok(())
    }

'''

ANCHOR = "    /// Get the gradient tensor associated with the given tensor, or, if it does not exist,"


def rewrite(pair):
    """One pair as one call. Where the gradient was broadcast to the zeros' shape
    (`sum_grad.dims()`, the reductions'), that shape is the tensor's own."""
    name, tensor, grad = pair.group(1), pair.group(2), pair.group(3)
    grad = grad.replace(f"{name}.dims()", f"{tensor}.dims()")
    return f"grads.accumulate({tensor}, {grad})?;\n"


def main():
    (path,) = sys.argv[1:]
    text = open(path).read()
    if "fn accumulate(" in text:
        sys.exit(f"{path}: already patched")
    if text.count(ANCHOR) != 1:
        sys.exit(f"{path}: `or_insert`'s doc comment not found once; patch by hand")
    text, pairs = PAIR.subn(rewrite, text)
    if pairs < 40 or "sum_grad.dims()" in text:
        sys.exit(f"{path}: {pairs} pairs rewritten, fewer than expected; patch by hand")
    text = text.replace(ANCHOR, ACCUMULATE + ANCHOR, 1)
    open(path, "w").write(text)
    print(f"{path}: {pairs} gradient sums rewritten")


if __name__ == "__main__":
    main()
