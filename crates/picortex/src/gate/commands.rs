//! Owner commands: `/picortex …` and the same words said to the bot.
//!
//! [`parse_command`] recognises two forms, case-insensitively. Whether the sender may give
//! the command is decided by [`super::decide`] (only the owner; others get
//! [`refusal_text`]).
//!
//! **Slash form**: the message starts with `/picortex` (then whitespace or the end):
//!
//! ```text
//! /picortex                      -> Help
//! /picortex help                 -> Help
//! /picortex status               -> Status
//! /picortex louder | quieter     -> Louder | Quieter (one step along the mode ladder)
//! /picortex reset                -> Reset (a fresh agent session for this chat)
//! /picortex hibernate | archive | restore
//! /picortex attention <mode>     -> Attention(mode); also `mode <mode>` and just `<mode>`
//! /picortex <anything else>      -> Unknown(<the rest, trimmed, as typed>)
//! ```
//!
//! `<mode>` is anything [`AttentionMode::parse`] reads ("discriminate quiet", "quiet",
//! "mentions only", …). Filler words after a command are ignored (`/picortex louder please`);
//! `/picortex attention` without a mode, or with one it cannot read, is `Unknown`.
//!
//! **Natural form**: a short message (at most [`MAX_NATURAL_WORDS`] words) addressed to the
//! bot by name or alias, at the start (optionally after "hey", "hi", "hello", "ok", "okay" or
//! "yo") or at the very end, whose remaining words, once punctuation and filler words
//! ([`FILLERS`]: "please", "be", "here", "can", "you", "a", "bit", …) are dropped, are exactly
//! one of the phrases below (the phrases are compared the same way, so "be more quiet here"
//! matches "more quiet"):
//!
//! | command | phrases |
//! |---|---|
//! | Louder | louder, more talkative, more chatty, chattier, more active, speak up |
//! | Quieter | quieter, quiet, more quiet, less talkative, less chatty, tone it down, hush |
//! | Status | status, status report, what's your status |
//! | Help | commands, list commands, command list, what are your commands, picortex help |
//! | Reset | reset, reset session, start over, start fresh, fresh start, new session |
//! | Attention(silent) | silent, stay silent, mute, stop answering, stop responding |
//! | Attention(discriminate) | discriminate, use your judgement, use your judgment |
//! | Attention(discriminate-quiet) | discriminate quiet |
//! | Attention(mentions-only) | mentions only, only mentions, only when mentioned, only answer / reply / respond when mentioned, answer / reply / respond only when mentioned |
//! | Attention(always) | always, always answer / reply / respond, answer everything, answer every message, answer everyone, respond to everything, reply to everything |
//! | Attention(mode) | attention `<mode>`, mode `<mode>` (any spelling `AttentionMode::parse` reads) |
//! | Hibernate, Archive, Restore | hibernate, go to sleep; archive; restore |
//!
//! So "pi, be quieter here", "hey pi louder please", "pi status", "Pi, only answer when
//! mentioned" and "quieter please, pi" are commands; "pi is quieter today", "pi, status of the
//! build?" and plain "be quieter" are not. A bare "pi help" is deliberately *not* a command:
//! people say it to ask the agent for help, so the natural form of Help is "pi, commands".

use super::{AttentionMode, BotIdentity};

/// A command the owner can give in any chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerCommand {
    /// Set the chat's attention mode.
    Attention(AttentionMode),
    /// Report the mode, agent, session, today's spend and the last decisions.
    Status,
    /// List the commands ([`help_text`]).
    Help,
    /// One step louder along the mode ladder.
    Louder,
    /// One step quieter along the mode ladder.
    Quieter,
    /// Start a fresh agent session for this chat.
    Reset,
    /// Stop the chat's agent now (lifecycle).
    Hibernate,
    /// Archive the chat's home now (lifecycle).
    Archive,
    /// Restore an archived chat (lifecycle).
    Restore,
    /// `/picortex <something else>`: the rest of the message, trimmed, as typed. The caller
    /// answers with [`help_text`].
    Unknown(String),
}

/// The longest message, in words (the address included), read as a natural-form command.
pub const MAX_NATURAL_WORDS: usize = 12;

/// Words dropped before matching a natural-form command or a slash command's arguments.
pub const FILLERS: &[&str] = &[
    "please", "pls", "plz", "kindly", "thanks", "thank", "thx", "ty", "you", "u", "can", "could",
    "would", "will", "just", "a", "bit", "little", "lot", "be", "get", "go", "make", "it", "here",
    "now", "in", "this", "chat", "group", "for", "me", "to", "set", "switch", "use", "your",
];

/// Words that may come before the bot's name in a natural-form command.
const GREETINGS: &[&str] = &["hey", "hi", "hello", "ok", "okay", "yo"];

/// The slash command's prefix.
const PREFIX: &str = "/picortex";

/// Natural phrases by meaning, written as people say them (normalized before matching).
const PHRASES: &[(Natural, &[&str])] = &[
    (
        Natural::Louder,
        &[
            "louder",
            "more talkative",
            "more chatty",
            "chattier",
            "more active",
            "speak up",
        ],
    ),
    (
        Natural::Quieter,
        &[
            "quieter",
            "quiet",
            "more quiet",
            "less talkative",
            "less chatty",
            "tone it down",
            "hush",
        ],
    ),
    (
        Natural::Status,
        &["status", "status report", "what's your status"],
    ),
    (
        Natural::Help,
        &[
            "commands",
            "list commands",
            "command list",
            "what are your commands",
            "picortex help",
        ],
    ),
    (
        Natural::Reset,
        &[
            "reset",
            "reset session",
            "start over",
            "start fresh",
            "fresh start",
            "new session",
        ],
    ),
    (
        Natural::Mode(AttentionMode::Silent),
        &[
            "silent",
            "stay silent",
            "mute",
            "stop answering",
            "stop responding",
        ],
    ),
    (
        Natural::Mode(AttentionMode::Discriminate),
        &["discriminate", "use your judgement", "use your judgment"],
    ),
    (
        Natural::Mode(AttentionMode::DiscriminateQuiet),
        &["discriminate quiet"],
    ),
    (
        Natural::Mode(AttentionMode::MentionsOnly),
        &[
            "mentions only",
            "only mentions",
            "only when mentioned",
            "only answer when mentioned",
            "only reply when mentioned",
            "only respond when mentioned",
            "answer only when mentioned",
            "reply only when mentioned",
            "respond only when mentioned",
        ],
    ),
    (
        Natural::Mode(AttentionMode::Always),
        &[
            "always",
            "always answer",
            "always reply",
            "always respond",
            "answer everything",
            "answer every message",
            "answer everyone",
            "respond to everything",
            "reply to everything",
        ],
    ),
    (Natural::Hibernate, &["hibernate", "go to sleep"]),
    (Natural::Archive, &["archive"]),
    (Natural::Restore, &["restore"]),
];

/// A natural phrase's meaning (a `Copy` stand-in for [`OwnerCommand`] in the const table).
#[derive(Debug, Clone, Copy)]
enum Natural {
    Louder,
    Quieter,
    Status,
    Help,
    Reset,
    Mode(AttentionMode),
    Hibernate,
    Archive,
    Restore,
}

impl Natural {
    fn command(self) -> OwnerCommand {
        match self {
            Natural::Louder => OwnerCommand::Louder,
            Natural::Quieter => OwnerCommand::Quieter,
            Natural::Status => OwnerCommand::Status,
            Natural::Help => OwnerCommand::Help,
            Natural::Reset => OwnerCommand::Reset,
            Natural::Mode(m) => OwnerCommand::Attention(m),
            Natural::Hibernate => OwnerCommand::Hibernate,
            Natural::Archive => OwnerCommand::Archive,
            Natural::Restore => OwnerCommand::Restore,
        }
    }
}

/// Reads `text` as an owner command, in the slash or the natural form (see the module
/// documentation for the grammar). `None` when it is not a command.
pub fn parse_command(text: &str, bot: &BotIdentity) -> Option<OwnerCommand> {
    slash(text).or_else(|| natural(text, bot))
}

/// The slash form.
fn slash(text: &str) -> Option<OwnerCommand> {
    let text = text.trim();
    let head = text.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let rest = &text[PREFIX.len()..];
    if rest.chars().next().is_some_and(|c| !c.is_whitespace()) {
        return None;
    }
    let rest = rest.trim();
    let all = words(rest);
    let Some((sub, args)) = all.split_first() else {
        return Some(OwnerCommand::Help);
    };
    let args = without_fillers(args);
    let simple = |command: OwnerCommand| args.is_empty().then_some(command);
    let parsed = match sub.as_str() {
        "help" => simple(OwnerCommand::Help),
        "status" => simple(OwnerCommand::Status),
        "louder" => simple(OwnerCommand::Louder),
        "quieter" => simple(OwnerCommand::Quieter),
        "reset" => simple(OwnerCommand::Reset),
        "hibernate" => simple(OwnerCommand::Hibernate),
        "archive" => simple(OwnerCommand::Archive),
        "restore" => simple(OwnerCommand::Restore),
        "attention" | "mode" => mode_of(&args).map(OwnerCommand::Attention),
        _ => mode_of(&all).map(OwnerCommand::Attention),
    };
    Some(parsed.unwrap_or_else(|| OwnerCommand::Unknown(rest.to_owned())))
}

/// The natural form.
fn natural(text: &str, bot: &BotIdentity) -> Option<OwnerCommand> {
    // Cheap early exit for long messages: words are at least as many as whitespace chunks.
    if text.split_whitespace().nth(MAX_NATURAL_WORDS).is_some() {
        return None;
    }
    let all = words(text);
    if all.len() > MAX_NATURAL_WORDS {
        return None;
    }
    let body = strip_address(&all, bot)?;
    let body = without_fillers(body);
    if body.is_empty() {
        return None;
    }
    if let Some((first, rest)) = body.split_first()
        && (first == "attention" || first == "mode")
    {
        return mode_of(rest).map(OwnerCommand::Attention);
    }
    PHRASES
        .iter()
        .find(|(_, phrases)| {
            phrases
                .iter()
                .any(|phrase| without_fillers(&words(phrase)) == body)
        })
        .map(|(meaning, _)| meaning.command())
}

/// The words after the bot's name at the start (after an optional greeting), or before it at
/// the end; `None` when the message is not addressed to the bot.
fn strip_address<'w>(all: &'w [String], bot: &BotIdentity) -> Option<&'w [String]> {
    let skip_greeting = usize::from(all.first().is_some_and(|w| GREETINGS.contains(&w.as_str())));
    for name in bot.names() {
        let name = words(name);
        if name.is_empty() {
            continue;
        }
        let after_greeting = &all[skip_greeting..];
        if after_greeting.starts_with(&name) {
            return Some(&after_greeting[name.len()..]);
        }
        if all.starts_with(&name) {
            return Some(&all[name.len()..]);
        }
        if all.len() > name.len() && all.ends_with(&name) {
            return Some(&all[..all.len() - name.len()]);
        }
    }
    None
}

/// A mode from its words (joined with `-`), if they name one.
fn mode_of(words: &[String]) -> Option<AttentionMode> {
    if words.is_empty() {
        return None;
    }
    AttentionMode::parse(&words.join("-"))
}

/// Lowercase words: split at whitespace and punctuation other than inner apostrophes,
/// hyphens, dots and underscores (which stay, so "what's" and "pi.bot" are one word); `’` is
/// read as `'`; `@` and other symbols separate words.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('’', "'")
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '\'' | '-' | '.' | '_')))
        .map(|w| w.trim_matches(|c: char| matches!(c, '\'' | '-' | '.' | '_')))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn without_fillers(words: &[String]) -> Vec<String> {
    words
        .iter()
        .filter(|w| !FILLERS.contains(&w.as_str()))
        .cloned()
        .collect()
}

/// The commands, for `/picortex help` and unknown commands. Short enough for one text
/// message; uses the bot's name in the natural examples.
pub fn help_text(bot: &BotIdentity) -> String {
    let name = bot.names().next().unwrap_or("pi");
    format!(
        "My owner can tell me how to behave here:\n\
         /picortex attention <mode>: silent (never answer), discriminate-quiet, discriminate \
         (a small model decides), mentions-only, or always\n\
         /picortex louder, /picortex quieter: one step along that list\n\
         /picortex status: mode, agent, session, today's spend, last decisions\n\
         /picortex reset: start a fresh session in this chat\n\
         /picortex help: this list\n\
         Or just say it: \"{name}, be quieter\", \"{name} status\", \"{name}, only answer when \
         mentioned\"."
    )
}

/// The short, polite answer to a command from anyone but the owner.
pub fn refusal_text() -> String {
    "Sorry, only my owner can change how I work here. You can still mention me with a question!"
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi() -> BotIdentity {
        BotIdentity {
            name: "pi".into(),
            aliases: vec!["picortex".into(), "robo pi".into()],
        }
    }

    fn cmd(text: &str) -> Option<OwnerCommand> {
        parse_command(text, &pi())
    }

    #[test]
    fn slash_commands() {
        use OwnerCommand::*;
        assert_eq!(cmd("/picortex"), Some(Help));
        assert_eq!(cmd("/picortex help"), Some(Help));
        assert_eq!(cmd("  /PICORTEX Status  "), Some(Status));
        assert_eq!(cmd("/picortex status."), Some(Status));
        assert_eq!(cmd("/picortex louder please"), Some(Louder));
        assert_eq!(cmd("/picortex quieter!"), Some(Quieter));
        assert_eq!(cmd("/picortex reset"), Some(Reset));
        assert_eq!(cmd("/picortex hibernate"), Some(Hibernate));
        assert_eq!(cmd("/picortex archive"), Some(Archive));
        assert_eq!(cmd("/picortex restore"), Some(Restore));
        assert_eq!(
            cmd("/picortex attention quiet"),
            Some(Attention(AttentionMode::DiscriminateQuiet))
        );
        assert_eq!(
            cmd("/picortex attention discriminate-quiet"),
            Some(Attention(AttentionMode::DiscriminateQuiet))
        );
        assert_eq!(
            cmd("/picortex attention discriminate quiet"),
            Some(Attention(AttentionMode::DiscriminateQuiet))
        );
        assert_eq!(
            cmd("/picortex attention Mentions Only"),
            Some(Attention(AttentionMode::MentionsOnly))
        );
        assert_eq!(
            cmd("/picortex attention silent"),
            Some(Attention(AttentionMode::Silent))
        );
        assert_eq!(
            cmd("/picortex attention always"),
            Some(Attention(AttentionMode::Always))
        );
        assert_eq!(
            cmd("/picortex attention discriminate"),
            Some(Attention(AttentionMode::Discriminate))
        );
        assert_eq!(
            cmd("/picortex mode always"),
            Some(Attention(AttentionMode::Always))
        );
        assert_eq!(
            cmd("/picortex always"),
            Some(Attention(AttentionMode::Always))
        );
        assert_eq!(
            cmd("/picortex\tattention\tmentions"),
            Some(Attention(AttentionMode::MentionsOnly))
        );
    }

    #[test]
    fn unknown_slash_commands() {
        use OwnerCommand::*;
        assert_eq!(cmd("/picortex foo"), Some(Unknown("foo".into())));
        assert_eq!(cmd("/picortex Foo Bar"), Some(Unknown("Foo Bar".into())));
        assert_eq!(
            cmd("/picortex attention"),
            Some(Unknown("attention".into()))
        );
        assert_eq!(
            cmd("/picortex attention loudest"),
            Some(Unknown("attention loudest".into()))
        );
        assert_eq!(
            cmd("/picortex status of the build"),
            Some(Unknown("status of the build".into()))
        );
        // Not the prefix.
        assert_eq!(cmd("/picortexes status"), None);
        assert_eq!(cmd("see /picortex status"), None);
        // "/pi status" is not the slash form, but it is addressed to pi: natural.
        assert_eq!(cmd("/pi status"), Some(Status));
        assert_eq!(cmd("picortex status please"), Some(Status)); // natural, by alias
    }

    #[test]
    fn natural_commands() {
        use OwnerCommand::*;
        assert_eq!(cmd("pi, be quieter here"), Some(Quieter));
        assert_eq!(cmd("Pi, be quieter here."), Some(Quieter));
        assert_eq!(cmd("hey pi louder please"), Some(Louder));
        assert_eq!(cmd("hey @pi, louder!"), Some(Louder));
        assert_eq!(cmd("pi status"), Some(Status));
        assert_eq!(cmd("pi, status?"), Some(Status));
        assert_eq!(cmd("pi what’s your status"), Some(Status));
        assert_eq!(
            cmd("pi, only answer when mentioned"),
            Some(Attention(AttentionMode::MentionsOnly))
        );
        assert_eq!(
            cmd("pi: answer only when mentioned please"),
            Some(Attention(AttentionMode::MentionsOnly))
        );
        assert_eq!(
            cmd("pi mentions only"),
            Some(Attention(AttentionMode::MentionsOnly))
        );
        assert_eq!(
            cmd("pi, answer everything"),
            Some(Attention(AttentionMode::Always))
        );
        assert_eq!(cmd("pi go silent"), Some(Attention(AttentionMode::Silent)));
        assert_eq!(
            cmd("pi, attention discriminate quiet"),
            Some(Attention(AttentionMode::DiscriminateQuiet))
        );
        assert_eq!(
            cmd("pi set attention to smart"),
            Some(Attention(AttentionMode::Discriminate))
        );
        assert_eq!(
            cmd("pi use your judgement"),
            Some(Attention(AttentionMode::Discriminate))
        );
        assert_eq!(cmd("pi, can you be a bit more quiet"), Some(Quieter));
        assert_eq!(cmd("pi, tone it down"), Some(Quieter));
        assert_eq!(cmd("pi speak up"), Some(Louder));
        assert_eq!(cmd("pi reset"), Some(Reset));
        assert_eq!(cmd("pi, start over"), Some(Reset));
        assert_eq!(cmd("pi, commands?"), Some(Help));
        assert_eq!(cmd("quieter please, pi"), Some(Quieter));
        assert_eq!(cmd("Robo Pi, louder"), Some(Louder));
        assert_eq!(cmd("@picortex status"), Some(Status));
        assert_eq!(cmd("pi hibernate"), Some(Hibernate));
    }

    #[test]
    fn not_natural_commands() {
        for text in [
            "be quieter",
            "status",
            "louder please",
            "pi is quieter today",
            "pi, status of the build?",
            "pi help",
            "pi, help!",
            "pi",
            "pi, thanks",
            "hey pi",
            "pie status",
            "api status",
            "pi, what's the weather",
            "hey pi, can you be quieter about the deploy and also check the logs and the alerts",
            "pi attention",
            "pi attention loudest",
            "I told pi to be quieter",
            "",
        ] {
            assert_eq!(cmd(text), None, "{text:?}");
        }
    }

    #[test]
    fn phrases_are_reachable() {
        // Every phrase survives filler removal and is matched when said to the bot.
        for (meaning, phrases) in PHRASES {
            for phrase in *phrases {
                assert!(!without_fillers(&words(phrase)).is_empty(), "{phrase}");
                assert_eq!(
                    cmd(&format!("pi, {phrase}")),
                    Some(meaning.command()),
                    "{phrase}"
                );
            }
        }
    }

    #[test]
    fn help_and_refusal() {
        let help = help_text(&pi());
        for needle in [
            "/picortex attention",
            "/picortex status",
            "/picortex louder",
            "/picortex quieter",
            "/picortex reset",
            "/picortex help",
            "mentions-only",
            "discriminate-quiet",
            "\"pi, be quieter\"",
        ] {
            assert!(help.contains(needle), "{needle}");
        }
        let r = refusal_text();
        assert!(r.starts_with("Sorry"));
        assert!(r.len() < 120);
    }
}
