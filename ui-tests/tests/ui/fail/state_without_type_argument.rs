use natask_runtime::task;

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    level: u8,
}

#[task]
async fn restore(state: State) {
    let _ = state.level;
}

fn main() {}
