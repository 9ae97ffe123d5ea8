#!/usr/bin/env python3
"""Applies this project's one change to a copy of Candle's `src/backprop.rs`.

Candle's backward pass gives every tensor's gradient as

    let sum_grad = grads.or_insert(arg)?;      // a tensor of zeros, arg's shape
    *sum_grad = sum_grad.add(&arg_grad)?;      // zeros + the gradient, a new tensor

so each gradient costs a zero-filled allocation and an addition that reads two tensors
and writes a third. This rewrites each such pair as `grads.accumulate(arg, &arg_grad)?`,
which stores the first gradient as it is (made contiguous, as the addition's result
was) and adds only the second and later ones. The subtractions and the sites with code
between the two lines stay as Candle wrote them.

    python3 vendor/patch_candle_backprop.py vendor/candle-core/src/backprop.rs

It refuses a file it has already patched, or one whose shape it no longer recognises.
"""

import re
import sys

PAIR = re.compile(
    r"let (\w+) = grads\.or_insert\(([^()]*)\)\?;\n\s*\*\1 = \1\.add\((.*)\)\?;?\n"
)

ACCUMULATE = '''    /// Adds `grad` to the gradient of `tensor`. The first gradient is stored as it is
    /// (made contiguous, as a sum would be), not added to a tensor of zeros: that was a
    /// zero-fill and an addition over the whole tensor for every gradient.
    fn accumulate(&mut self, tensor: &Tensor, grad: &Tensor) -> Result<()> {
        match self.0.entry(tensor.id()) {
            Entry::Occupied(mut entry) => {
                let sum = entry.get().add(grad)?;
                entry.insert(sum);
            }
            Entry::Vacant(entry) => {
                entry.insert(grad.contiguous()?);
            }
        }
        Ok(())
    }

'''

ANCHOR = "    /// Get the gradient tensor associated with the given tensor, or, if it does not exist,"


def main():
    (path,) = sys.argv[1:]
    text = open(path).read()
    if "fn accumulate(" in text:
        sys.exit(f"{path}: already patched")
    if text.count(ANCHOR) != 1:
        sys.exit(f"{path}: `or_insert`'s doc comment not found once; patch by hand")
    text, pairs = PAIR.subn(lambda m: f"grads.accumulate({m.group(2)}, {m.group(3)})?;\n", text)
    # The reductions' gradients were broadcast to the zeros' shape, which is arg's.
    text = text.replace("broadcast_as(sum_grad.dims())", "broadcast_as(arg.dims())")
    if pairs < 40 or "sum_grad.dims()" in text:
        sys.exit(f"{path}: {pairs} pairs rewritten, fewer than expected; patch by hand")
    text = text.replace(ANCHOR, ACCUMULATE + ANCHOR, 1)
    open(path, "w").write(text)
    print(f"{path}: {pairs} gradient sums rewritten")


if __name__ == "__main__":
    main()
