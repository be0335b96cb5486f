//! A typed view of the annotated function: which parameters are payload and
//! which are injected.
//!
//! The rule is syntactic, because a macro cannot see types:
//! - a parameter whose type is written `State<T>` (any path ending in
//!   `State` with one type argument) is injected shared state;
//! - a parameter whose type is written `&TaskContext` (any path ending in
//!   `TaskContext`) is the injected context;
//! - every other parameter is payload. `#[payload]` on a parameter forces it
//!   into the payload, for a user type that happens to be called `State`.

use syn::{Attribute, FnArg, Ident, ItemFn, Pat, Type};

pub(crate) struct TaskFn {
    pub(crate) item: ItemFn,
    pub(crate) params: Vec<Param>,
}

pub(crate) struct Param {
    pub(crate) kind: ParamKind,
    /// Attributes to carry onto the payload field (`#[serde]`, `#[doc]`).
    pub(crate) field_attrs: Vec<Attribute>,
    pub(crate) arg: FnArg,
}

pub(crate) enum ParamKind {
    Payload {
        ident: Option<Ident>,
        ty: Box<Type>,
        /// Marked `#[payload]`: a payload even if it looks injected.
        forced: bool,
        /// Serialised through `#[serde(with = ..)]` or similar, so the type
        /// itself need not implement the serde traits.
        custom_serde: bool,
    },
    State {
        inner: Box<Type>,
    },
    Context,
    /// `self`; reported by validation.
    Receiver,
}

impl TaskFn {
    /// Splits the parameters. Attributes that only make sense on the payload
    /// field are removed from the function so that it still compiles.
    pub(crate) fn from_item(mut item: ItemFn) -> TaskFn {
        let mut params = Vec::new();
        for arg in item.sig.inputs.iter_mut() {
            let original = arg.clone();
            let param = match arg {
                FnArg::Receiver(_) => Param {
                    kind: ParamKind::Receiver,
                    field_attrs: Vec::new(),
                    arg: original,
                },
                FnArg::Typed(pat_type) => {
                    let forced = take_payload_attr(&mut pat_type.attrs);
                    let (kept, field_attrs) = std::mem::take(&mut pat_type.attrs)
                        .into_iter()
                        .partition(is_fn_param_attr);
                    pat_type.attrs = kept;
                    let kind = match (forced, classify(&pat_type.ty)) {
                        (false, Some(kind)) => kind,
                        _ => ParamKind::Payload {
                            ident: match &*pat_type.pat {
                                Pat::Ident(p) if p.subpat.is_none() => Some(p.ident.clone()),
                                _ => None,
                            },
                            ty: pat_type.ty.clone(),
                            forced,
                            custom_serde: field_attrs.iter().any(has_custom_serde),
                        },
                    };
                    Param {
                        kind,
                        field_attrs,
                        arg: original,
                    }
                }
            };
            params.push(param);
        }
        TaskFn { item, params }
    }

    pub(crate) fn payload(&self) -> impl Iterator<Item = (&Param, &Option<Ident>, &Type)> {
        self.params.iter().filter_map(|p| match &p.kind {
            ParamKind::Payload { ident, ty, .. } => Some((p, ident, &**ty)),
            _ => None,
        })
    }
}

fn take_payload_attr(attrs: &mut Vec<Attribute>) -> bool {
    let before = attrs.len();
    attrs.retain(|a| !a.path().is_ident("payload"));
    attrs.len() != before
}

fn is_fn_param_attr(attr: &Attribute) -> bool {
    ["cfg", "allow", "warn", "deny", "expect", "forbid"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

/// `#[serde(with = ..)]`, `serialize_with` or `deserialize_with`.
fn has_custom_serde(attr: &Attribute) -> bool {
    if !attr.path().is_ident("serde") {
        return false;
    }
    let mut found = false;
    let _ = attr.parse_nested_meta(|meta| {
        if ["with", "serialize_with", "deserialize_with"]
            .iter()
            .any(|k| meta.path.is_ident(k))
        {
            found = true;
        }
        if let Ok(v) = meta.value() {
            v.parse::<syn::Expr>()?;
        }
        Ok(())
    });
    found
}

fn last_segment_is(path: &syn::Path, name: &str) -> Option<syn::PathArguments> {
    let last = path.segments.last()?;
    (last.ident == name).then(|| last.arguments.clone())
}

/// Injected parameter kinds, recognised by how their type is written.
pub(crate) fn classify(ty: &Type) -> Option<ParamKind> {
    match ty {
        Type::Path(tp) if tp.qself.is_none() => {
            let syn::PathArguments::AngleBracketed(args) = last_segment_is(&tp.path, "State")?
            else {
                return None;
            };
            match args.args.first() {
                Some(syn::GenericArgument::Type(inner)) if args.args.len() == 1 => {
                    Some(ParamKind::State {
                        inner: Box::new(inner.clone()),
                    })
                }
                _ => None,
            }
        }
        Type::Reference(r) if r.mutability.is_none() => match &*r.elem {
            Type::Path(tp)
                if tp.qself.is_none() && last_segment_is(&tp.path, "TaskContext").is_some() =>
            {
                Some(ParamKind::Context)
            }
            _ => None,
        },
        Type::Paren(p) => classify(&p.elem),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn kinds(item: proc_macro2::TokenStream) -> Vec<&'static str> {
        let f = TaskFn::from_item(syn::parse2(item).unwrap());
        f.params
            .iter()
            .map(|p| match p.kind {
                ParamKind::Payload { .. } => "payload",
                ParamKind::State { .. } => "state",
                ParamKind::Context => "context",
                ParamKind::Receiver => "self",
            })
            .collect()
    }

    #[test]
    fn splits_injected_from_payload() {
        assert_eq!(
            kinds(quote! {
                async fn f(m: State<Mailer>, c: &TaskContext, to: String, x: natask_runtime::State<u8>, #[payload] s: State<u8>, n: &'static str) {}
            }),
            ["state", "context", "payload", "state", "payload", "payload"]
        );
    }

    #[test]
    fn mutable_context_is_payload_syntax() {
        // validation reports it; the split itself does not guess
        assert_eq!(
            kinds(quote! { async fn f(c: &mut TaskContext) {} }),
            ["payload"]
        );
    }

    #[test]
    fn custom_serde_is_noticed() {
        let f = TaskFn::from_item(
            syn::parse2(quote! {
                async fn f(#[serde(with = "m")] a: D, #[serde(default, rename = "x")] b: u8, #[payload] c: State<u8>) {}
            })
            .unwrap(),
        );
        let flags: Vec<_> = f
            .params
            .iter()
            .map(|p| match p.kind {
                ParamKind::Payload {
                    forced,
                    custom_serde,
                    ..
                } => (forced, custom_serde),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(flags, [(false, true), (false, false), (true, false)]);
    }

    #[test]
    fn field_attributes_leave_the_function() {
        let f = TaskFn::from_item(
            syn::parse2(quote! {
                async fn f(#[serde(default)] #[allow(unused)] to: String) {}
            })
            .unwrap(),
        );
        assert_eq!(f.params[0].field_attrs.len(), 1);
        let inputs = &f.item.sig.inputs;
        assert_eq!(
            quote!(#inputs).to_string(),
            "# [allow (unused)] to : String"
        );
    }
}
