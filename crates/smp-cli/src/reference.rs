//! The reference text (`reference.md`): the crate documentation, and the JSON shapes that
//! `smp COMMAND --help` shows, so that both always say the same.

/// Exit codes, JSON conventions and one section per command, in Markdown.
pub(crate) const TEXT: &str = include_str!("reference.md");

/// The placeholder the command shapes use for one image slot's state.
const IMAGE_STATE: &str = "IMAGE_STATE";

/// The `--help` footer of `command` (`"os echo"`): its JSON shape from its section of
/// [`TEXT`], or nothing when the section has no JSON block.
pub(crate) fn shape(command: &str) -> String {
    let Some(block) = section(command).and_then(json_block) else {
        return String::new();
    };
    let mut out = String::from("JSON output (--json):\n");
    indent(&mut out, block);
    if block.contains(IMAGE_STATE) {
        if let Some(state) = image_state() {
            out.push_str("where IMAGE_STATE is\n");
            indent(&mut out, state);
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// Appends `block`, each line indented by two spaces.
fn indent(out: &mut String, block: &str) {
    for line in block.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
}

/// The section of `command`: from its heading to the next one.
fn section(command: &str) -> Option<&'static str> {
    let heading = format!("### `smp {command}");
    let mut rest = TEXT;
    loop {
        let at = rest.find(&heading)?;
        let after = &rest[at + heading.len()..];
        if after.starts_with([' ', '`']) {
            let end = after.find("\n### ").unwrap_or(after.len());
            return Some(&after[..end]);
        }
        rest = after;
    }
}

/// The first ```` ```json ```` block of `text`.
fn json_block(text: &str) -> Option<&str> {
    const OPEN: &str = "```json\n";
    let start = text.find(OPEN)? + OPEN.len();
    let len = text[start..].find("```")?;
    Some(text[start..start + len].trim_end())
}

/// The JSON block that defines `IMAGE_STATE`.
fn image_state() -> Option<&'static str> {
    let at = TEXT.find("`IMAGE_STATE` is")?;
    json_block(&TEXT[at..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    /// Every leaf command except `completions`, as typed.
    fn leaf_commands() -> Vec<String> {
        let cli = Cli::command();
        let mut out = Vec::new();
        for group in cli.get_subcommands() {
            if group.get_name() == "completions" {
                continue;
            }
            for leaf in group.get_subcommands() {
                out.push(format!("{} {}", group.get_name(), leaf.get_name()));
            }
        }
        out
    }

    #[test]
    fn every_command_has_a_documented_shape() {
        let commands = leaf_commands();
        assert_eq!(commands.len(), 33, "{commands:?}");
        for command in commands {
            let text = shape(&command);
            assert!(
                text.starts_with("JSON output (--json):\n  {"),
                "{command}: {text:?}"
            );
        }
        let raw = shape("raw");
        assert!(
            raw.starts_with("JSON output (--json):\n  {\"group\""),
            "{raw}"
        );
        assert_eq!(shape("completions"), "");
        assert_eq!(shape("no such"), "");
    }

    #[test]
    fn a_heading_must_match_the_whole_command() {
        // "settings set" must not find "settings set-something", nor "os info" the
        // "image info" section.
        assert!(section("os info").is_some_and(|s| s.contains("\"format\"")));
        assert!(section("image info").is_some_and(|s| s.contains("load_addr")));
        assert!(section("image inf").is_none());
    }

    #[test]
    fn image_state_is_expanded() {
        let list = shape("image list");
        assert!(
            list.contains("where IMAGE_STATE is\n  {\"image\": 0"),
            "{list}"
        );
        assert!(!shape("os echo").contains("IMAGE_STATE"));
    }

    #[test]
    fn documented_examples_are_json() {
        // Placeholders aside, every example is valid JSON, so the documentation cannot
        // drift into a shape no parser accepts.
        let state = image_state().expect("IMAGE_STATE is documented");
        let mut rest = TEXT;
        let mut count = 0;
        while let Some(block) = json_block(rest) {
            let text = block.replace(IMAGE_STATE, state).replace("...\"", "\"");
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("{e}: {text}"));
            count += 1;
            let at = rest.find(block).unwrap_or(0) + block.len();
            rest = &rest[at..];
        }
        assert!(count > 30, "{count}");
    }
}
