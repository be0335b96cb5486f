//! Every `#[task]`, `#[event]` and `#[subscribe]` diagnostic, pinned. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p natask-ui-tests` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
