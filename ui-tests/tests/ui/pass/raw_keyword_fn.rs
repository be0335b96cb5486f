//! A fn named like a keyword: `r#match` gives task `match`, struct `Match`.
use natask_runtime::{task, Task};

#[task]
async fn r#match(r#type: String) {
    let _ = r#type;
}

fn main() {
    assert_eq!(Match::NAME, "match");
    let m = Match::new("x".into());
    assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"type":"x"}"#);
}
