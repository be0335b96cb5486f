//! trybuild cases for `#[task]`; see `tests/ui`.
