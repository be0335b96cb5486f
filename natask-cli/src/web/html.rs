//! The pages' HTML, written with `format!`: every value that comes from
//! NATS, a URL or a form goes through [`escape`] (or [`url_part`] inside a
//! link) before it is put into markup.

use std::fmt::Write;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// `text` made safe inside HTML text and inside a double- or single-quoted
/// attribute.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything but `-`, `.`, `_`, `~` and alphanumerics is encoded.
const PART: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as one path segment or query value of a URL (then still to be
/// escaped as an attribute, which a percent-encoded string survives as is).
pub(crate) fn url_part(text: &str) -> String {
    utf8_percent_encode(text, PART).to_string()
}

/// A link to `href` (already built of [`url_part`]s) reading `text`.
pub(crate) fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(href), escape(text))
}

/// A table; `rows` hold HTML already (escaped cells).
pub(crate) fn table(id: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table id=\"{}\"><thead><tr>", escape(id));
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// Rows of `name: value` (values are HTML already).
pub(crate) fn fields(id: &str, rows: &[(&str, String)]) -> String {
    let mut out = format!("<table id=\"{}\" class=\"fields\"><tbody>", escape(id));
    for (name, value) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{value}</td></tr>", escape(name));
    }
    out.push_str("</tbody></table>");
    out
}

/// A form that POSTs to `action` with the CSRF token and `hidden` fields,
/// shown as one button. `confirm` asks first (in the browser).
pub(crate) fn button(
    csrf: &str,
    action: &str,
    id: &str,
    label: &str,
    hidden: &[(&str, &str)],
    danger: bool,
) -> String {
    let mut out = format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(action),
        escape(csrf)
    );
    for (name, value) in hidden {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let _ = write!(
        out,
        "<button type=\"submit\" id=\"{}\"{}>{}</button></form>",
        escape(id),
        if danger { " class=\"danger\"" } else { "" },
        escape(label)
    );
    out
}

/// JSON pretty-printed when `bytes` are JSON, else the text (lossy UTF-8);
/// escaped, for a `<pre>`.
pub(crate) fn payload(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => escape(&serde_json::to_string_pretty(&value).unwrap_or_default()),
        Err(_) => escape(&String::from_utf8_lossy(bytes)),
    }
}

/// The pages of the navigation bar: path and label.
const NAV: [(&str, &str); 6] = [
    ("/", "Queues"),
    ("/dlq", "Dead letters"),
    ("/schedules", "Schedules"),
    ("/tasks", "Tasks"),
    ("/workers", "Workers"),
    ("/catalog", "Catalog"),
];

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}\
nav{background:#1d2433;padding:.6em 1em}nav a{color:#dfe6f3;margin-right:1.2em;text-decoration:none}\
nav a.here{color:#fff;font-weight:600}nav .brand{color:#8fd3ff;font-weight:700}\
main{padding:1em 1.5em}h1{font-size:1.4em}\
table{border-collapse:collapse;background:#fff;margin:.5em 0 1em}\
th,td{border:1px solid #d5d9e0;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#eef1f5}td.num{text-align:right}\
pre{background:#fff;border:1px solid #d5d9e0;padding:.6em;overflow:auto;max-width:100%}\
.flash{background:#e3f6e8;border:1px solid #8cc79b;padding:.5em;margin-bottom:1em}\
.error{background:#fbe4e4;border:1px solid #d98b8b;padding:.5em}\
form.inline{display:inline;margin-right:.5em}button{padding:.3em .9em;cursor:pointer}\
button.danger{background:#c0392b;color:#fff;border:1px solid #8e2a20}\
.muted{color:#6b7385}";

/// A whole page: navigation, the flash message of the last POST (escaped
/// here), the body (HTML already), and an optional inline script.
pub(crate) fn page(
    title: &str,
    here: &str,
    flash: Option<&str>,
    body: &str,
    script: Option<&str>,
) -> String {
    let mut nav = String::from("<span class=\"brand\">natask</span> ");
    for (path, label) in NAV {
        let class = if path == here { " class=\"here\"" } else { "" };
        let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
    }
    let flash = flash
        .filter(|f| !f.is_empty())
        .map(|f| format!("<p class=\"flash\" id=\"flash\">{}</p>", escape(f)))
        .unwrap_or_default();
    let script = script
        .map(|s| format!("<script>{s}</script>"))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · natask</title><style>{STYLE}</style></head>\
         <body><nav>{nav}</nav><main><h1>{}</h1>{flash}{body}</main>{script}</body></html>",
        escape(title),
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href='x' title="y">&</a>"#),
            "&lt;a href=&#39;x&#39; title=&quot;y&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn url_parts_keep_names_and_encode_the_rest() {
        assert_eq!(url_part("cli_dlq-2.x~"), "cli_dlq-2.x~");
        assert_eq!(url_part("a b/&?\"<"), "a%20b%2F%26%3F%22%3C");
    }

    #[test]
    fn a_page_escapes_its_title_and_flash() {
        let html = page("<t>", "/", Some("<script>x</script>"), "", None);
        assert!(!html.contains("<script>x"), "{html}");
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(html.contains("<title>&lt;t&gt; · natask</title>"), "{html}");
    }

    #[test]
    fn a_payload_is_pretty_json_or_escaped_text() {
        assert_eq!(
            payload(br#"{"a":"<b>"}"#),
            "{\n  &quot;a&quot;: &quot;&lt;b&gt;&quot;\n}"
        );
        assert_eq!(payload(b"not json <x>"), "not json &lt;x&gt;");
    }
}
