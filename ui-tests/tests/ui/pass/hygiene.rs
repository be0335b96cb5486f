//! Names in scope at the call site must not change what the macro generates.
#![allow(dead_code, unused_imports)]

use std as natask_runtime;

struct Result;
struct Box;
struct Option;
struct Vec;
struct String;
struct Clone;
struct Debug;
mod serde {}
mod core {}
trait Task {}
trait Serialize {}
fn drop() {}

mod jobs {
    #[::natask_runtime::task]
    pub async fn clean(days: u32) -> ::core::result::Result<(), ::natask_runtime::TaskError> {
        let _ = days;
        Ok(())
    }
}

fn main() {
    let j = jobs::Clean::new(3);
    let _ = format!("{:?}", ::core::clone::Clone::clone(&j));
}
