//! End to end: work in progress.
fn main() {}
