//! The task as `valid` resolved it (serde's `Container`, thiserror's
//! `Input`): everything `expand` reads, already checked, so that expansion
//! has nothing left to decide or to report.

use natask_core::retry::BackoffSpec;
use natask_core::Until;
use proc_macro2::Span;
use syn::{Attribute, Ident, ItemFn, Path, Type, Visibility};

pub(crate) struct Task {
    /// The function, emitted as written (minus the field attributes of its
    /// payload parameters).
    pub(crate) item: ItemFn,
    /// The function's visibility, given to the struct, its fields and its
    /// methods.
    pub(crate) vis: Visibility,
    pub(crate) fn_ident: Ident,
    /// The function's doc attributes, for the struct.
    pub(crate) docs: Vec<Attribute>,
    /// The payload struct.
    pub(crate) payload: Ident,
    /// The wire name.
    pub(crate) name: String,
    /// Where the name came from: the `name = ".."` literal or the fn name.
    pub(crate) name_span: Span,
    pub(crate) queue: String,
    /// The payload parameters, in order.
    pub(crate) fields: Vec<Field>,
    /// What the handler passes for each parameter, in order.
    pub(crate) args: Vec<Arg>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) backoff: Option<BackoffSpec>,
    pub(crate) cron: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) unique: Option<Unique>,
    /// `version = ..` (1 when not given).
    pub(crate) version: u32,
    /// `upgrade = ..`: the function turning older payloads into this one.
    pub(crate) upgrade: Option<Path>,
    /// Where natask is: `::natask_runtime` unless `crate = ..` says.
    pub(crate) crate_path: Path,
    /// The written return type, asserted to be a task result.
    pub(crate) output: Option<Type>,
}

/// A payload parameter, and the struct field it becomes.
pub(crate) struct Field {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// `#[serde(..)]` and doc attributes, carried onto the field.
    pub(crate) attrs: Vec<Attribute>,
    /// Whether its type must be serialisable itself: not when
    /// `#[serde(with = ..)]` or similar serialises it.
    pub(crate) asserted: bool,
}

/// What the handler passes for one parameter of the function.
pub(crate) enum Arg {
    /// The payload field of this name.
    Payload(Ident),
    /// The shared state of this type (`State<T>`'s `T`).
    State(Type),
    /// The attempt's `&TaskContext`.
    Context,
    /// The whole decoded payload: a subscriber's event.
    Event,
}

/// A valid `unique` declaration.
pub(crate) struct Unique {
    pub(crate) ttl_secs: u64,
    /// The payload fields of the key, in declaration order.
    pub(crate) fields: Vec<Ident>,
    pub(crate) until: Option<Until>,
}

impl Task {
    /// The state types the handler takes, in parameter order.
    pub(crate) fn states(&self) -> impl Iterator<Item = &Type> {
        self.args.iter().filter_map(|arg| match arg {
            Arg::State(ty) => Some(ty),
            _ => None,
        })
    }
}

/// An event type as `#[event]` resolved it.
pub(crate) struct Event {
    /// The struct, emitted as written after the derives.
    pub(crate) item: syn::ItemStruct,
    /// The wire name.
    pub(crate) name: String,
    pub(crate) name_span: Span,
    /// `retention = ..` in milliseconds (the default when not given).
    pub(crate) retention_ms: u64,
    pub(crate) crate_path: Path,
}

/// A subscriber as `#[subscribe]` resolved it: the handler is a task whose
/// payload is the whole event (`Arg::Event`), whose `name` is the handler's
/// and whose `queue` is the subscription's consumer.
pub(crate) struct Subscriber {
    pub(crate) task: Task,
    /// The event type, as written on the parameter.
    pub(crate) event: Type,
    pub(crate) service: String,
    pub(crate) start: natask_core::Start,
}
