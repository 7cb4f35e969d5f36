//! The text of a vendor notification, by Tencent's rules (spec/tim-offline-push.md §2.1–2.3).

/// The title used when a message has none (§2.3; Xiaomi spec: `a new message`).
pub const DEFAULT_TITLE: &str = "a new message";

/// What a notification will show, before the vendor cuts it to its own limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PushText {
    pub title: String,
    pub desc: String,
}

impl PushText {
    /// Title, else the default; Desc, else the message's own text. `None` when there is nothing
    /// to show (no desc and no text): such a message is not pushed.
    pub fn new(title: Option<&str>, desc: Option<&str>, text: Option<&str>) -> Option<PushText> {
        let title = match title {
            Some(t) if !t.trim().is_empty() => t.to_string(),
            _ => DEFAULT_TITLE.to_string(),
        };
        let desc = match (desc, text) {
            (Some(d), _) if !d.trim().is_empty() => d.to_string(),
            (_, Some(t)) if !t.trim().is_empty() => t.to_string(),
            _ => return None,
        };
        Some(PushText { title, desc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_tencent() {
        let t = PushText::new(None, None, Some("你好 👋")).unwrap();
        assert_eq!(t.title, "a new message");
        assert_eq!(t.desc, "你好 👋");
        let t = PushText::new(Some("Carol"), Some("sent a photo"), Some("ignored")).unwrap();
        assert_eq!(
            (t.title.as_str(), t.desc.as_str()),
            ("Carol", "sent a photo")
        );
        assert_eq!(PushText::new(Some("x"), None, None), None);
        assert_eq!(PushText::new(None, Some("  "), Some("")), None);
    }
}
