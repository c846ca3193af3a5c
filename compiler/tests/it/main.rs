//! Tests of the compiler as a library: robustness on any input, scale, and the meaning of what
//! it emits.

mod format;
mod lowering;
mod robustness;
