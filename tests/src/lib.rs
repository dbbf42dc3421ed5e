//! Black-box tests live in this crate's `tests/` folder.
