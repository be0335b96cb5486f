//! `unique`, `unique_by` and `unique_until`: the lock a unique task takes
//! on every enqueue.

use natask_core::Until;
use syn::ext::IdentExt;
use syn::{Ident, LitStr};

use crate::attr::TaskArgs;
use crate::ctxt::Ctxt;
use crate::model::{Field, Unique};
use crate::suggest;

/// The task's uniqueness, if it declares any; `fields` are its payload
/// fields.
pub(super) fn resolve(cx: &mut Ctxt, args: &TaskArgs, fields: &[Field]) -> Option<Unique> {
    let Some(ttl) = &args.unique_ms else {
        for (key, lit) in [
            ("unique_by", &args.unique_by),
            ("unique_until", &args.unique_until),
        ] {
            if let Some(lit) = lit {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "`{key}` belongs to a unique task, which also needs `unique = \"<ttl>\"`, \
                         the longest the lock is held; add e.g. `unique = \"10m\"`"
                    ),
                );
            }
        }
        return None;
    };
    if ttl.value < 1_000 {
        cx.error_at(
            ttl.span,
            "a unique lock must be held for at least one second, the resolution of the server's \
             per-message TTL; write e.g. `unique = \"10m\"`",
        );
    } else if ttl.value % 1_000 != 0 {
        cx.error_at(
            ttl.span,
            "a unique lock is held for whole seconds (the server's per-message TTL has no finer \
             resolution); write a duration in `s`, `m`, `h` or `d`",
        );
    }
    if args.cron.is_some() {
        cx.error_at(
            ttl.span,
            "cron tasks cannot be unique: the server produces their runs, no enqueue takes a lock; \
             remove `unique` or `cron`",
        );
    }
    Some(Unique {
        ttl_secs: ttl.value / 1_000,
        fields: key_fields(cx, args.unique_by.as_ref(), fields),
        until: until(cx, args.unique_until.as_ref()),
    })
}

/// The fields of the key, in declaration order: those `unique_by` names,
/// or all of them.
fn key_fields(cx: &mut Ctxt, unique_by: Option<&LitStr>, fields: &[Field]) -> Vec<Ident> {
    let Some(lit) = unique_by else {
        return fields.iter().map(|f| f.ident.clone()).collect();
    };
    let plain: Vec<String> = fields.iter().map(|f| f.ident.unraw().to_string()).collect();
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    let text = lit.value();
    let names: Vec<&str> = text.split(',').map(str::trim).collect();
    if names.iter().all(|n| n.is_empty()) {
        cx.error_spanned_by(
            lit,
            "`unique_by` names no payload parameter; list some, e.g. `unique_by = \"tenant, report\"`, \
             or remove it to use all of them",
        );
    }
    let mut chosen: Vec<usize> = Vec::new();
    for name in names.iter().filter(|n| !n.is_empty()) {
        match plain.iter().position(|p| p == name) {
            Some(i) if chosen.contains(&i) => cx.error_spanned_by(
                lit,
                format!("`{name}` is named twice in `unique_by`; remove one"),
            ),
            Some(i) => chosen.push(i),
            None => cx.error_spanned_by(
                lit,
                format!(
                    "`{name}` in `unique_by` is not a payload parameter; {}",
                    expected_parameter(name, &plain)
                ),
            ),
        }
    }
    // declaration order, whatever order `unique_by` lists them in
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|i| fields[i].ident.clone())
        .collect()
}

/// What `unique_by` could have named instead of `name`.
fn expected_parameter(name: &str, payload: &[&str]) -> String {
    if payload.is_empty() {
        "the task has none; remove `unique_by` (the task is then unique by its name alone)"
            .to_owned()
    } else {
        suggest::expected_one_of(name, payload)
    }
}

/// `unique_until = ".."`: a stage of the task.
fn until(cx: &mut Ctxt, unique_until: Option<&LitStr>) -> Option<Until> {
    let lit = unique_until?;
    let text = lit.value();
    let until = Until::parse(&text);
    if until.is_none() {
        cx.error_spanned_by(
            lit,
            format!(
                "`{text}` is not a stage of a task; `unique_until` takes `started`, `succeeded` or `finished`{}",
                suggest::did_you_mean(&text, &Until::ALL.map(Until::as_str))
            ),
        );
    }
    until
}

#[cfg(test)]
mod tests {
    use super::super::tests::errors;
    use quote::quote;

    #[test]
    fn unique_by_names_payload_parameters() {
        let e = errors(
            quote!(
                unique = "1h",
                unique_by = "month, tenat, month",
                unique_until = "strated"
            ),
            quote!(
                async fn f(tenant: String, month: u32) {}
            ),
        );
        assert_eq!(
            e,
            [
                "`tenat` in `unique_by` is not a payload parameter; expected one of `tenant`, `month`; did you mean `tenant`?",
                "`month` is named twice in `unique_by`; remove one",
                "`strated` is not a stage of a task; `unique_until` takes `started`, `succeeded` or `finished`; did you mean `started`?",
            ]
        );
    }
}
