//! Cutting notification text to a vendor's limit without splitting a character.
//!
//! The title and body themselves come from `domain::PushText` (Tencent's rules: default title
//! "a new message", body from the message text); each vendor only cuts them to its own limits.

use crate::domain::push_text::DEFAULT_TITLE;

/// At most `max` chars (OPPO and Meizu count every character, CJK and emoji alike, as 1).
pub fn cut_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// At most `max` width units, where ASCII counts 1 and anything else 2 (vivo: "≤20 CJK chars /
/// ≤40 Latin", spec vivo.md §3).
pub fn cut_width(text: &str, max: usize) -> &str {
    let mut width = 0;
    for (at, c) in text.char_indices() {
        width += if c.is_ascii() { 1 } else { 2 };
        if width > max {
            return &text[..at];
        }
    }
    text
}

/// Width in vivo's units (ASCII 1, else 2).
pub fn width(text: &str) -> usize {
    text.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum()
}

/// The text, or the default title when blank: no vendor accepts a blank title or body.
pub fn or_default(text: &str) -> &str {
    if text.trim().is_empty() {
        DEFAULT_TITLE
    } else {
        text
    }
}

/// A stable, non-negative id for a conversation (the same one Xiaomi uses for `notify_id`), so
/// the notifications of one conversation replace each other in the tray.
pub fn notify_id_for(conversation: &str) -> i32 {
    crate::providers::xiaomi::XiaomiMessage::notify_id_for(conversation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_char() {
        assert_eq!(cut_chars("消息😀ab", 3), "消息😀");
        assert_eq!(cut_chars("ab", 3), "ab");
        assert_eq!(cut_width("ab消息", 4), "ab消");
        assert_eq!(cut_width("ab消息", 5), "ab消");
        assert_eq!(cut_width("ab消息", 6), "ab消息");
        assert_eq!(width("a消"), 3);
        assert_eq!(or_default("  "), "a new message");
        assert_eq!(or_default("x"), "x");
    }
}
