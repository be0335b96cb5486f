//! `#[event]` and `#[subscribe]` with every argument, and hygiene: names in
//! scope at the call site do not change what the macros generate.
#![allow(dead_code, unused_imports)]

use std as natask_runtime;

struct Result;
struct Option;
struct Clone;
struct Debug;
mod serde {}
trait Event {}

mod shop {
    use ::natask_runtime::{State, TaskContext, TaskError};

    /// An order was placed.
    #[::natask_runtime::event(name = "order-placed", retention = "30d")]
    pub struct OrderPlaced {
        pub order: u64,
        #[serde(default)]
        pub note: String,
    }

    #[::natask_runtime::event]
    pub struct OrderShipped {}

    pub struct Ledger;

    #[::natask_runtime::subscribe(
        service = "billing",
        name = "charge_order",
        start = "all",
        retries = 5,
        timeout = "30s",
        backoff = "exponential(1s, x2, max 5m)"
    )]
    pub async fn charge(
        order: OrderPlaced,
        ledger: State<Ledger>,
        ctx: &TaskContext,
    ) -> ::core::result::Result<(), TaskError> {
        let _ = (order, ledger, ctx);
        Ok(())
    }

    #[::natask_runtime::subscribe(service = "shipping")]
    async fn notify(shipped: OrderShipped) {
        let _ = shipped;
    }
}

fn main() {
    use ::natask_runtime::Event as _;
    assert_eq!(<shop::OrderPlaced as ::natask_runtime::Event>::NAME, "order-placed");
    assert_eq!(
        <shop::OrderPlaced as ::natask_runtime::Event>::RETENTION_MS,
        30 * 24 * 3600 * 1000
    );
    assert_eq!(<shop::OrderShipped as ::natask_runtime::Event>::NAME, "order_shipped");
    let o = shop::OrderPlaced { order: 1, note: ::std::string::String::new() };
    let _ = format!("{:?}", ::core::clone::Clone::clone(&o));
    let subs = ::natask_runtime::registry::subscribers();
    let charge = subs.iter().find(|s| s.service == "billing").unwrap();
    assert_eq!(charge.handler, "charge_order");
    assert_eq!(charge.event, "order-placed");
    assert_eq!(charge.task.queue, "billing__charge_order");
    assert_eq!(charge.task.retries, ::core::option::Option::Some(5));
    assert_eq!(charge.start, ::natask_runtime::Start::All);
    let notify = subs.iter().find(|s| s.service == "shipping").unwrap();
    assert_eq!(notify.start, ::natask_runtime::Start::New);
    assert_eq!(notify.task.name, "order_shipped");
}
