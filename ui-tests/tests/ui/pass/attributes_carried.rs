//! Doc comments and serde attributes on the fn and its parameters end up on
//! the generated struct and its fields.
use natask_runtime::task;

/// Sends one email.
#[task]
async fn send_email(
    /// Who gets it.
    to: String,
    #[serde(default)] cc: Vec<String>,
    #[serde(rename = "title")] subject: String,
) {
    let _ = (to, cc, subject);
}

fn main() {
    let decoded: SendEmail = serde_json::from_str(r#"{"to":"a@b.c","title":"hi"}"#).unwrap();
    assert!(decoded.cc.is_empty());
    assert_eq!(decoded.subject, "hi");
    let json = serde_json::to_string(&SendEmail::new("a".into(), vec![], "s".into())).unwrap();
    assert_eq!(json, r#"{"to":"a","cc":[],"title":"s"}"#);
}
