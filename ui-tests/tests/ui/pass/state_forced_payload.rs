//! A user type named `State` is payload when marked `#[payload]`.
use natask_runtime::task;

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct State<T>(T);

#[task]
async fn set_state(#[payload] next: State<u8>, injected: natask_runtime::State<String>) {
    let _ = (next, injected);
}

fn main() {
    let s = SetState::new(State(3));
    assert_eq!(s.next, State(3));
    assert_eq!(<SetState as natask_runtime::Task>::ENTRY.states.len(), 1);
}
