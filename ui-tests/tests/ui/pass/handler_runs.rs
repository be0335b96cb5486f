//! The registered handler decodes the payload, injects state and context,
//! calls the function and encodes its result (no server needed).
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use natask_core::{Headers, Invocation, StateMap, TaskContext, TaskId};
use natask_runtime::{task, State, Task, TaskError};

struct Greeting(&'static str);

#[task]
async fn greet(greeting: State<Greeting>, ctx: &TaskContext, name: String) -> Result<String, TaskError> {
    Ok(format!("{} {name} (attempt {})", greeting.0, ctx.attempt()))
}

fn run(payload: &[u8], states: &StateMap) -> Result<Vec<u8>, TaskError> {
    let ctx = TaskContext::new(TaskId::new(), "greet", "default", 1, 3, None, Duration::from_secs(5), Headers::new());
    let inv = Invocation { payload, context: &ctx, states };
    let mut fut = pin!((Greet::ENTRY.handler)(inv));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the handler should not wait"),
    }
}

fn main() {
    let mut states = StateMap::new();
    states.insert(Greeting("hello"));
    let payload = serde_json::to_vec(&Greet::new("ada".into())).unwrap();
    assert_eq!(run(&payload, &states).unwrap(), br#""hello ada (attempt 1)""#);
    let bad = run(b"{}", &states).unwrap_err();
    assert_eq!(bad.kind(), natask_runtime::TaskErrorKind::Decode, "{bad}");
    assert!(run(&payload, &StateMap::new()).is_err(), "missing state is an error");
}
