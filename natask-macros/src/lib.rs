//! The `#[task]` attribute of natask. Use it through `natask_runtime::task`;
//! see that crate for the full guide.
//!
//! The crate is a pipeline: [`attr`](crate) parses the arguments, `ast`
//! splits the parameters into payload and injected ones, `valid` checks
//! every rule (collecting all mistakes), and `expand` generates code.

use proc_macro::TokenStream;

mod ast;
mod attr;
mod ctxt;
mod expand;
mod valid;

/// Turns an `async fn` into a background task.
///
/// Generates a payload struct named after the function in CamelCase (fields
/// are the payload parameters, in order), `new` and `enqueue` on it, an
/// implementation of `Task`, and a registry entry the runtime collects at
/// link time. The function itself stays as written and callable.
///
/// # Arguments
///
/// ## `queue = "emails"`
/// The queue the task is published to; `default` when omitted.
///
/// ## `name = "send_email"`
/// The wire name; defaults to the function's name. Pin it before renaming a
/// function that has tasks queued.
///
/// ## `retries = 3`
/// Attempts after the first failed one; the runtime's default when omitted.
///
/// ## `timeout = "30s"`
/// Per-attempt timeout (`ms`, `s`, `m`, `h`, `d`); the runtime's default when
/// omitted.
///
/// ## `payload = SendMail`
/// Name of the generated struct.
///
/// ## `crate = ::path::to::natask_runtime`
/// Where the generated code finds natask, for crates that re-export it.
#[proc_macro_attribute]
pub fn task(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: syn::ItemFn = match syn::parse(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(proc_macro2::TokenStream::from(input));
            return out.into();
        }
    };
    let mut cx = ctxt::Ctxt::default();
    let args = attr::TaskArgs::parse(&mut cx, args.into());
    let f = ast::TaskFn::from_item(item);
    let names = valid::validate(&mut cx, &args, &f);
    match cx.check() {
        Ok(()) => expand::expand(&args, &f, &names).into(),
        Err(e) => {
            // Emit the function anyway so one mistake does not cascade into
            // "cannot find function" errors at every call site.
            let item = &f.item;
            let mut out = e.to_compile_error();
            out.extend(quote::quote!(#item));
            out.into()
        }
    }
}
