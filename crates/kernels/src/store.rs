//! Where a kernel writes its outputs: an initialised buffer, or one allocated without
//! zeroing that the kernel fills.

use std::mem::MaybeUninit;

/// A place a kernel writes an f32 to: an initialised output or an uninitialised one.
pub trait Store: Sized {
    fn store(&mut self, v: f32);
    /// The slice's start, for vector stores: each element is an f32's four bytes. (Only
    /// the x86-64 vector code stores through it.)
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn as_f32_ptr(slice: &mut [Self]) -> *mut f32;
}

impl Store for f32 {
    fn store(&mut self, v: f32) {
        *self = v;
    }
    fn as_f32_ptr(slice: &mut [Self]) -> *mut f32 {
        slice.as_mut_ptr()
    }
}

impl Store for MaybeUninit<f32> {
    fn store(&mut self, v: f32) {
        self.write(v);
    }
    fn as_f32_ptr(slice: &mut [Self]) -> *mut f32 {
        // MaybeUninit<f32> has f32's size and alignment.
        slice.as_mut_ptr().cast()
    }
}
