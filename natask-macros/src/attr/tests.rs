//! Attribute parsing on token streams.

use super::*;
use quote::quote;

fn parse(tokens: proc_macro2::TokenStream) -> (TaskArgs, Result<(), String>) {
    let mut cx = Ctxt::default();
    let args = TaskArgs::parse(&mut cx, tokens);
    let errors = cx.check().map_err(|e| {
        e.into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    });
    (args, errors)
}

#[test]
fn parses_every_key() {
    let (args, errors) = parse(quote!(
        queue = "emails",
        name = "mail",
        retries = 3,
        timeout = "2m",
        backoff = "list(1s, 5s)",
        payload = Mail,
        crate = ::my::natask
    ));
    errors.unwrap();
    assert_eq!(args.queue.unwrap().value, "emails");
    assert_eq!(args.name.unwrap().value, "mail");
    assert_eq!(args.retries.unwrap().value, 3);
    assert_eq!(args.timeout_ms.unwrap().value, 120_000);
    assert_eq!(
        args.backoff.unwrap().value,
        BackoffSpec::List(vec![1_000, 5_000])
    );
    assert_eq!(args.payload.unwrap().to_string(), "Mail");
    let path = args.crate_path.unwrap();
    assert_eq!(quote!(#path).to_string(), ":: my :: natask");
}

#[test]
fn each_attribute_takes_its_own_keys() {
    let mut cx = Ctxt::default();
    let tokens = quote!(
        service = "billing",
        name = "charge",
        start = "all",
        retries = 2,
        timeout = "1m",
        backoff = "fixed(5s)",
        crate = ::my::natask
    );
    let args = TaskArgs::parse_for(&mut cx, tokens, Macro::Subscribe);
    cx.check().unwrap();
    assert_eq!(args.service.unwrap().value, "billing");
    assert_eq!(args.start.unwrap().value(), "all");
    assert_eq!(args.retries.unwrap().value, 2);
    let mut cx = Ctxt::default();
    let args = TaskArgs::parse_for(&mut cx, quote!(retention = "2h"), Macro::Event);
    cx.check().unwrap();
    assert_eq!(args.retention_ms.unwrap().value, 7_200_000);
    // and none of the others'
    let mut cx = Ctxt::default();
    TaskArgs::parse_for(&mut cx, quote!(service = "a"), Macro::Event);
    TaskArgs::parse_for(&mut cx, quote!(retention = "1d"), Macro::Subscribe);
    TaskArgs::parse_for(&mut cx, quote!(start = "new"), Macro::Task);
    let errors: Vec<String> = cx
        .check()
        .unwrap_err()
        .into_iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        errors,
        [
            "unknown `#[event]` argument `service`; expected one of `name`, `retention`, `crate`",
            "unknown `#[subscribe]` argument `retention`; expected one of `service`, `name`, `start`, `retries`, `timeout`, `backoff`, `crate`",
            "unknown `#[task]` argument `start`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `version`, `upgrade`, `payload`, `crate`",
        ]
    );
}

#[test]
fn reports_every_mistake_together() {
    let (_, errors) = parse(quote!(
        qeue = "x",
        retries = "3",
        timeout = "30x",
        backoff = "fixd(1s)"
    ));
    assert_eq!(
        errors.unwrap_err(),
        "unknown `#[task]` argument `qeue`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `version`, `upgrade`, `payload`, `crate`; did you mean `queue`? \
         | `retries` takes an integer, not a string; write `retries = 3` \
         | `30x` is not a duration; write a whole number followed by `ms`, `s`, `m`, `h` or `d`, e.g. `30s` \
         | `fixd` is not a backoff policy (did you mean `fixed`?); write `fixed(5s)`, `exponential(500ms, x2, max 1m)` or `list(1s, 5s, 30s)`"
    );
}

#[test]
fn wrong_literal_kinds() {
    let (_, errors) = parse(quote!(queue = emails, retries = -1, retries2 = 1, name = 3));
    assert_eq!(
        errors.unwrap_err(),
        "`queue` takes a string literal; write `queue = \"emails\"` \
         | `retries` cannot be negative; write `retries = 0` for a task that is never retried \
         | unknown `#[task]` argument `retries2`; expected one of `queue`, `name`, `retries`, `timeout`, `backoff`, `cron`, `time_zone`, `unique`, `unique_by`, `unique_until`, `version`, `upgrade`, `payload`, `crate`; did you mean `retries`? \
         | `name` takes a string literal; write `name = \"send_email\"`"
    );
    let (_, errors) = parse(quote!(retries = 99999999999999999999999));
    assert!(errors
        .unwrap_err()
        .starts_with("`retries = 99999999999999999999999` is not a count"));
}

#[test]
fn flags_and_paths_are_refused() {
    let (_, errors) = parse(quote!(retries, payload = a::B));
    assert_eq!(
        errors.unwrap_err(),
        "`retries` needs a value; write `retries = 3` \
         | `payload` names the generated struct, not a path; write a plain name such as `payload = SendEmail`"
    );
}

#[test]
fn quoted_paths_are_refused() {
    let (_, errors) = parse(quote!(
        crate = "::my::natask",
        payload = "Mail",
        queue = "emails"
    ));
    assert_eq!(
        errors.unwrap_err(),
        "`crate` takes a path, not a string; write `crate = ::my::natask` \
         | `payload` takes a plain name, not a string; write `payload = Mail`"
    );
    let (_, errors) = parse(quote!(crate = 3, payload = "a::B"));
    assert_eq!(
        errors.unwrap_err(),
        "`crate` takes a path, not a literal; write `crate = ::my_crate::natask` \
         | `payload` takes a plain name, not a string; write `payload = SendEmail`"
    );
}

#[test]
fn duplicated_keys_are_refused() {
    let (args, errors) = parse(quote!(queue = "a", queue = "b"));
    assert_eq!(
        errors.unwrap_err(),
        "`queue` is given twice; remove one of them"
    );
    assert_eq!(args.queue.unwrap().value, "a");
}

#[test]
fn expressions_for_paths_are_refused() {
    let (_, errors) = parse(quote!(crate = 1 + 2, payload = "Mail".into()));
    assert_eq!(
        errors.unwrap_err(),
        "`crate` takes a path; write `crate = ::my_crate::natask` \
         | `payload` takes a plain name; write `payload = SendEmail`"
    );
}
