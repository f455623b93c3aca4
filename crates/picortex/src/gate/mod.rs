//! Attention gating: for every inbound message, whether the bot answers, and why.
//!
//! This module is pure decision logic, with no I/O except the discriminator's model call. The
//! gatekeeper (`crate::gatekeeper`) feeds it facts from the store and records what it says.
//!
//! [`decide`] applies the rules, cheapest first, before any model call:
//!
//! 1. **Command**: a `/picortex …` command, or a natural-form command addressed to the bot
//!    ("pi, be quieter here"; see [`commands`]). From the owner it is a [`Verdict::Command`];
//!    from anyone else a [`Verdict::Refuse`] (a short polite refusal), except in a `silent`
//!    chat, where the bot never speaks to anyone but its owner, so it is skipped.
//! 2. **Silent**: in [`AttentionMode::Silent`] every other message is recorded and skipped.
//! 3. **Reply to the bot**: an inline reply to one of the bot's messages is answered.
//! 4. **Mention**: a message naming the bot (its name or an alias, see [`rules::mentions`]) is
//!    answered.
//! 5. **Mode**: `always` answers; `mentions-only` skips; the two discriminate modes ask the
//!    model ([`Verdict::AskModel`], see [`discriminator`]).
//!
//! Non-text payloads (images, voice, files) trigger only in `always`, unless the message
//! mentions the bot or replies to it: a message made only of attachments is skipped in every
//! other mode without asking the model (which cannot see them). A message with text *and*
//! attachments is judged on its text, and the discriminator is told it carries attachments.
//! A message with neither text nor attachments is skipped.

pub mod commands;
pub mod discriminator;
pub mod rules;

use std::fmt;

pub use commands::{OwnerCommand, parse_command};

/// How readily the bot answers in a chat, quietest first (the derived order follows it:
/// `Silent < DiscriminateQuiet < … < Always`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttentionMode {
    /// Record every message, never answer (owner commands still work).
    Silent,
    /// Like [`AttentionMode::Discriminate`], and the chat sees no typing indicator or read
    /// receipt unless the bot answers.
    DiscriminateQuiet,
    /// Mentions and replies are answered; for anything else a small model decides.
    Discriminate,
    /// Only mentions and replies to the bot are answered. The default for groups.
    MentionsOnly,
    /// Every message is answered. The default for direct messages.
    Always,
}

impl AttentionMode {
    /// Every mode, quietest first: the ladder [`louder`](Self::louder) and
    /// [`quieter`](Self::quieter) walk.
    pub const ALL: [AttentionMode; 5] = [
        AttentionMode::Silent,
        AttentionMode::DiscriminateQuiet,
        AttentionMode::Discriminate,
        AttentionMode::MentionsOnly,
        AttentionMode::Always,
    ];

    /// Parses a mode name, case-insensitively, with spaces or underscores for dashes and
    /// trailing punctuation ignored.
    ///
    /// Canonical names: `silent`, `discriminate-quiet`, `discriminate`, `mentions-only`,
    /// `always`. Synonyms: `silence`, `mute`, `muted`, `off` (silent); `quiet`,
    /// `discreet`, `quiet-discriminate` (discriminate-quiet); `smart`, `auto`, `judge`
    /// (discriminate); `mentions`, `mention`, `mention-only`, `mentioned`, `only-mentions`,
    /// `when-mentioned` (mentions-only); `all`, `everything`, `on`, `loud` (always).
    pub fn parse(s: &str) -> Option<Self> {
        let lowered = s.trim().to_lowercase();
        let normalized: String = lowered
            .trim_end_matches(|c: char| c.is_ascii_punctuation())
            .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        Some(match normalized.as_str() {
            "silent" | "silence" | "mute" | "muted" | "off" => Self::Silent,
            "discriminate-quiet" | "quiet" | "discreet" | "quiet-discriminate" => {
                Self::DiscriminateQuiet
            }
            "discriminate" | "smart" | "auto" | "judge" => Self::Discriminate,
            "mentions-only" | "mentions" | "mention" | "mention-only" | "mentioned"
            | "only-mentions" | "when-mentioned" => Self::MentionsOnly,
            "always" | "all" | "everything" | "on" | "loud" => Self::Always,
            _ => return None,
        })
    }

    /// The canonical name, as stored and shown (`"mentions-only"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Silent => "silent",
            Self::DiscriminateQuiet => "discriminate-quiet",
            Self::Discriminate => "discriminate",
            Self::MentionsOnly => "mentions-only",
            Self::Always => "always",
        }
    }

    /// One step louder along [`AttentionMode::ALL`]; `Always` stays `Always`.
    pub fn louder(self) -> Self {
        match self {
            Self::Silent => Self::DiscriminateQuiet,
            Self::DiscriminateQuiet => Self::Discriminate,
            Self::Discriminate => Self::MentionsOnly,
            Self::MentionsOnly | Self::Always => Self::Always,
        }
    }

    /// One step quieter along [`AttentionMode::ALL`]; `Silent` stays `Silent`.
    pub fn quieter(self) -> Self {
        match self {
            Self::Silent | Self::DiscriminateQuiet => Self::Silent,
            Self::Discriminate => Self::DiscriminateQuiet,
            Self::MentionsOnly => Self::Discriminate,
            Self::Always => Self::MentionsOnly,
        }
    }

    /// The mode of a chat whose owner never chose one: `mentions-only` in groups, `always` in
    /// direct messages.
    pub fn default_for(is_group: bool) -> Self {
        if is_group {
            Self::MentionsOnly
        } else {
            Self::Always
        }
    }

    /// Whether the chat should see no typing indicator or read receipt unless the bot
    /// answers: true for `discriminate-quiet`, and for `silent` (a bot that only records must
    /// not show that it reads along).
    pub fn quiet_signals(self) -> bool {
        matches!(self, Self::Silent | Self::DiscriminateQuiet)
    }
}

impl fmt::Display for AttentionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who the bot is in chats: the name people call it by and any aliases (all matched
/// case-insensitively, as whole words; a leading `@` in the configuration is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BotIdentity {
    /// The bot's name, e.g. `pi`.
    pub name: String,
    /// Other names it answers to, e.g. `picortex`.
    pub aliases: Vec<String>,
}

impl BotIdentity {
    /// The name, then the aliases: trimmed, without a leading `@`, empty ones left out.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str())
            .chain(self.aliases.iter().map(String::as_str))
            .map(|n| n.trim().trim_start_matches('@').trim())
            .filter(|n| !n.is_empty())
    }
}

/// What the gate knows about a chat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatFacts {
    /// A group chat (more than one other participant), not a direct message.
    pub is_group: bool,
    /// The group's name, if it has one.
    pub display_name: Option<String>,
    /// The participants' handles (phone numbers or emails), other than the bot.
    pub participants: Vec<String>,
    /// The owner's handle (configuration), if one is configured.
    pub owner: Option<String>,
}

impl ChatFacts {
    /// Whether `handle` is the owner's (see [`same_handle`]). False when no owner is
    /// configured.
    pub fn is_owner(&self, handle: &str) -> bool {
        self.owner
            .as_deref()
            .is_some_and(|owner| same_handle(owner, handle))
    }
}

/// Whether two handles name the same person: compared without surrounding whitespace and
/// case; phone numbers (only digits, `+`, spaces, `-`, `.`, `(`, `)`) by their digits and a
/// leading `+`, so `+1 (555) 010-0199` equals `+15550100199`.
pub fn same_handle(a: &str, b: &str) -> bool {
    fn normalize(h: &str) -> String {
        let h = h.trim();
        let phone_like = h.chars().any(|c| c.is_ascii_digit())
            && h.chars()
                .all(|c| c.is_ascii_digit() || " +-.()".contains(c));
        if phone_like {
            let plus = if h.starts_with('+') { "+" } else { "" };
            let digits: String = h.chars().filter(char::is_ascii_digit).collect();
            format!("{plus}{digits}")
        } else {
            h.to_lowercase()
        }
    }
    let (a, b) = (normalize(a), normalize(b));
    !a.is_empty() && a == b
}

/// An inbound message, as the gate sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incoming {
    /// The sender's handle.
    pub sender: String,
    /// The message's text (empty for an attachment alone).
    pub text: String,
    /// It carries anything but text: images, voice, files, app cards.
    pub has_non_text: bool,
    /// It is an inline reply to one of the bot's messages.
    pub replies_to_bot: bool,
}

/// Which rule decided. Its `Debug` form (`ReplyToBot`) and [`RuleKind::as_str`]
/// (`reply_to_bot`) name it in records and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// A `/picortex` or natural-form command.
    Command,
    /// An inline reply to one of the bot's messages.
    ReplyToBot,
    /// The bot's name or an alias.
    Mention,
    /// The chat's attention mode (including `silent`).
    Mode,
    /// A message made only of attachments, outside `always`.
    NonText,
    /// A message with neither text nor attachments.
    Empty,
}

impl RuleKind {
    /// A stable snake-case name: `command`, `reply_to_bot`, `mention`, `mode`, `non_text`,
    /// `empty`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::ReplyToBot => "reply_to_bot",
            Self::Mention => "mention",
            Self::Mode => "mode",
            Self::NonText => "non_text",
            Self::Empty => "empty",
        }
    }
}

impl fmt::Display for RuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rules say about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it: a turn for the agent.
    Respond {
        /// The rule that decided.
        rule: RuleKind,
        /// Why, for the record and the UI.
        reason: String,
    },
    /// Do not answer; keep it (as context for the next answered turn, if the chat accumulates).
    Skip {
        /// The rule that decided.
        rule: RuleKind,
        /// Why, for the record and the UI.
        reason: String,
    },
    /// A command from the owner: carry it out and answer with its result.
    Command(OwnerCommand),
    /// A command from someone else: answer with [`commands::refusal_text`].
    Refuse {
        /// Why, for the record.
        reason: String,
    },
    /// No rule decided (a discriminate mode): ask the [`discriminator`].
    AskModel,
}

/// Decides, from the rules alone, what to do with `msg` in a chat in `mode` (see the module
/// documentation for the order). Pure and cheap: no I/O, no allocation beyond the verdict's
/// reason and the command parser's word list.
pub fn decide(mode: AttentionMode, bot: &BotIdentity, chat: &ChatFacts, msg: &Incoming) -> Verdict {
    if let Some(command) = parse_command(&msg.text, bot) {
        if chat.is_owner(&msg.sender) {
            return Verdict::Command(command);
        }
        if mode == AttentionMode::Silent {
            return Verdict::Skip {
                rule: RuleKind::Command,
                reason: "silent: a command from someone other than the owner, ignored".into(),
            };
        }
        let reason = if chat.owner.is_none() {
            "a command, but no owner is configured".to_owned()
        } else {
            "a command from someone other than the owner".to_owned()
        };
        return Verdict::Refuse { reason };
    }

    let name = bot.names().next().unwrap_or("the bot");
    if mode == AttentionMode::Silent {
        let note = if msg.replies_to_bot {
            " (it replies to the bot)"
        } else if rules::mentions(&msg.text, bot) {
            " (it mentions the bot)"
        } else {
            ""
        };
        return Verdict::Skip {
            rule: RuleKind::Mode,
            reason: format!("silent: recorded, never answered{note}"),
        };
    }
    if msg.replies_to_bot {
        return Verdict::Respond {
            rule: RuleKind::ReplyToBot,
            reason: format!("a reply to one of {name}'s messages"),
        };
    }
    if rules::mentions(&msg.text, bot) {
        return Verdict::Respond {
            rule: RuleKind::Mention,
            reason: format!("mentions {name}"),
        };
    }

    let no_text = msg.text.trim().is_empty();
    if no_text && !msg.has_non_text {
        return Verdict::Skip {
            rule: RuleKind::Empty,
            reason: "neither text nor attachments".into(),
        };
    }
    if mode == AttentionMode::Always {
        return Verdict::Respond {
            rule: RuleKind::Mode,
            reason: "always: every message is answered".into(),
        };
    }
    if no_text {
        return Verdict::Skip {
            rule: RuleKind::NonText,
            reason: format!(
                "{}: attachments alone are answered only in always mode or with a mention",
                mode.as_str()
            ),
        };
    }
    match mode {
        AttentionMode::Discriminate | AttentionMode::DiscriminateQuiet => Verdict::AskModel,
        AttentionMode::MentionsOnly | AttentionMode::Silent | AttentionMode::Always => {
            Verdict::Skip {
                rule: RuleKind::Mode,
                reason: format!(
                    "{}: not a mention of {name} nor a reply to it",
                    mode.as_str()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bot() -> BotIdentity {
        BotIdentity {
            name: "pi".into(),
            aliases: vec!["picortex".into()],
        }
    }

    fn group() -> ChatFacts {
        ChatFacts {
            is_group: true,
            display_name: Some("Climbing crew".into()),
            participants: vec![
                "+15550100001".into(),
                "+15550100002".into(),
                "+15550100003".into(),
                "+15550100099".into(),
            ],
            owner: Some("+15550100099".into()),
        }
    }

    fn dm() -> ChatFacts {
        ChatFacts {
            is_group: false,
            display_name: None,
            participants: vec!["+15550100001".into()],
            owner: Some("+15550100099".into()),
        }
    }

    fn msg(sender: &str, text: &str) -> Incoming {
        Incoming {
            sender: sender.into(),
            text: text.into(),
            has_non_text: false,
            replies_to_bot: false,
        }
    }

    const OWNER: &str = "+15550100099";
    const ALICE: &str = "+15550100001";

    fn rule_of(v: &Verdict) -> Option<RuleKind> {
        match v {
            Verdict::Respond { rule, .. } | Verdict::Skip { rule, .. } => Some(*rule),
            _ => None,
        }
    }

    fn responds(v: &Verdict) -> bool {
        matches!(v, Verdict::Respond { .. })
    }

    #[test]
    fn mode_names_round_trip_and_synonyms() {
        for m in AttentionMode::ALL {
            assert_eq!(AttentionMode::parse(m.as_str()), Some(m));
            assert_eq!(AttentionMode::parse(&m.as_str().to_uppercase()), Some(m));
            assert_eq!(m.to_string(), m.as_str());
        }
        assert_eq!(
            AttentionMode::parse("quiet"),
            Some(AttentionMode::DiscriminateQuiet)
        );
        assert_eq!(
            AttentionMode::parse(" Discriminate Quiet "),
            Some(AttentionMode::DiscriminateQuiet)
        );
        assert_eq!(
            AttentionMode::parse("mentions_only"),
            Some(AttentionMode::MentionsOnly)
        );
        assert_eq!(
            AttentionMode::parse("mentions"),
            Some(AttentionMode::MentionsOnly)
        );
        assert_eq!(
            AttentionMode::parse("mentions only."),
            Some(AttentionMode::MentionsOnly)
        );
        assert_eq!(AttentionMode::parse("mute"), Some(AttentionMode::Silent));
        assert_eq!(AttentionMode::parse("all"), Some(AttentionMode::Always));
        assert_eq!(
            AttentionMode::parse("smart"),
            Some(AttentionMode::Discriminate)
        );
        assert_eq!(AttentionMode::parse(""), None);
        assert_eq!(AttentionMode::parse("loudest"), None);
        assert_eq!(AttentionMode::parse("mentions-only-please"), None);
    }

    #[test]
    fn ladder_order_and_ends() {
        assert!(AttentionMode::ALL.windows(2).all(|w| w[0] < w[1]));
        for w in AttentionMode::ALL.windows(2) {
            assert_eq!(w[0].louder(), w[1]);
            assert_eq!(w[1].quieter(), w[0]);
        }
        assert_eq!(AttentionMode::Always.louder(), AttentionMode::Always);
        assert_eq!(AttentionMode::Silent.quieter(), AttentionMode::Silent);
        let mut m = AttentionMode::Silent;
        for _ in 0..10 {
            m = m.louder();
        }
        assert_eq!(m, AttentionMode::Always);
        for _ in 0..10 {
            m = m.quieter();
        }
        assert_eq!(m, AttentionMode::Silent);
    }

    #[test]
    fn defaults_and_quiet_signals() {
        assert_eq!(
            AttentionMode::default_for(true),
            AttentionMode::MentionsOnly
        );
        assert_eq!(AttentionMode::default_for(false), AttentionMode::Always);
        assert!(AttentionMode::DiscriminateQuiet.quiet_signals());
        assert!(AttentionMode::Silent.quiet_signals());
        assert!(!AttentionMode::Discriminate.quiet_signals());
        assert!(!AttentionMode::MentionsOnly.quiet_signals());
        assert!(!AttentionMode::Always.quiet_signals());
    }

    #[test]
    fn handles_compare_loosely() {
        assert!(same_handle("+1 (555) 010-0199", "+15550100199"));
        assert!(same_handle(" Owner@Example.com ", "owner@example.com"));
        assert!(!same_handle("+15550100199", "+15550100198"));
        assert!(!same_handle("", ""));
        let chat = ChatFacts {
            owner: None,
            ..group()
        };
        assert!(!chat.is_owner(OWNER));
        assert!(group().is_owner(OWNER));
    }

    #[test]
    fn bot_names_skip_blanks_and_at_signs() {
        let b = BotIdentity {
            name: " @Pi ".into(),
            aliases: vec![String::new(), "  ".into(), "robo".into()],
        };
        assert_eq!(b.names().collect::<Vec<_>>(), vec!["Pi", "robo"]);
    }

    #[test]
    fn chatter_is_skipped_in_a_group_by_default() {
        let mode = AttentionMode::default_for(true);
        let v = decide(
            mode,
            &bot(),
            &group(),
            &msg(ALICE, "anyone up for climbing?"),
        );
        assert_eq!(rule_of(&v), Some(RuleKind::Mode));
        assert!(!responds(&v));
    }

    #[test]
    fn a_dm_answers_everything_by_default() {
        let mode = AttentionMode::default_for(false);
        let v = decide(mode, &bot(), &dm(), &msg(ALICE, "what's up"));
        assert_eq!(rule_of(&v), Some(RuleKind::Mode));
        assert!(responds(&v));
    }

    #[test]
    fn mention_and_reply_are_answered_in_mentions_only() {
        let m = AttentionMode::MentionsOnly;
        let v = decide(m, &bot(), &group(), &msg(ALICE, "hey pi, what's 2+2?"));
        assert_eq!(rule_of(&v), Some(RuleKind::Mention));
        assert!(responds(&v));
        let v = decide(m, &bot(), &group(), &msg(ALICE, "@picortex ping"));
        assert_eq!(rule_of(&v), Some(RuleKind::Mention));
        let mut reply = msg(ALICE, "thanks, and the next one?");
        reply.replies_to_bot = true;
        let v = decide(m, &bot(), &group(), &reply);
        assert_eq!(rule_of(&v), Some(RuleKind::ReplyToBot));
        assert!(responds(&v));
        let v = decide(m, &bot(), &group(), &msg(ALICE, "I baked a pie"));
        assert_eq!(rule_of(&v), Some(RuleKind::Mode));
        assert!(!responds(&v));
    }

    #[test]
    fn rules_apply_in_order() {
        // A command that also mentions the bot and replies to it: the command wins.
        let mut m = msg(OWNER, "pi, be quieter here");
        m.replies_to_bot = true;
        assert_eq!(
            decide(AttentionMode::Always, &bot(), &group(), &m),
            Verdict::Command(OwnerCommand::Quieter)
        );
        // A reply that also mentions: the reply rule decides.
        let mut m = msg(ALICE, "pi, and then?");
        m.replies_to_bot = true;
        let v = decide(AttentionMode::MentionsOnly, &bot(), &group(), &m);
        assert_eq!(rule_of(&v), Some(RuleKind::ReplyToBot));
        // A mention decides before the mode, even in discriminate modes (no model call).
        for mode in [
            AttentionMode::Discriminate,
            AttentionMode::DiscriminateQuiet,
        ] {
            let v = decide(mode, &bot(), &group(), &msg(ALICE, "Pi! look"));
            assert_eq!(rule_of(&v), Some(RuleKind::Mention));
            let mut r = msg(ALICE, "ok");
            r.replies_to_bot = true;
            assert_eq!(
                rule_of(&decide(mode, &bot(), &group(), &r)),
                Some(RuleKind::ReplyToBot)
            );
        }
        // In always, a mention is still reported as a mention.
        let v = decide(AttentionMode::Always, &bot(), &dm(), &msg(ALICE, "pi?"));
        assert_eq!(rule_of(&v), Some(RuleKind::Mention));
    }

    #[test]
    fn discriminate_modes_ask_the_model_when_no_rule_decides() {
        for mode in [
            AttentionMode::Discriminate,
            AttentionMode::DiscriminateQuiet,
        ] {
            for chat in [group(), dm()] {
                let v = decide(mode, &bot(), &chat, &msg(ALICE, "how do I rebase?"));
                assert_eq!(v, Verdict::AskModel);
            }
        }
    }

    #[test]
    fn silent_never_answers_but_owner_commands_work() {
        let s = AttentionMode::Silent;
        let mut everything = vec![
            msg(ALICE, "hello"),
            msg(ALICE, "pi, what's up?"),
            msg(OWNER, "pi, what's up?"),
            msg(OWNER, "just chatting"),
        ];
        let mut reply = msg(ALICE, "ok");
        reply.replies_to_bot = true;
        everything.push(reply);
        let mut photo = msg(ALICE, "");
        photo.has_non_text = true;
        everything.push(photo);
        for chat in [group(), dm()] {
            for m in &everything {
                let v = decide(s, &bot(), &chat, m);
                assert!(
                    matches!(
                        v,
                        Verdict::Skip {
                            rule: RuleKind::Mode,
                            ..
                        }
                    ),
                    "{m:?} gave {v:?}"
                );
            }
        }
        let v = decide(s, &bot(), &group(), &msg(ALICE, "pi, mentions only"));
        match v {
            Verdict::Skip { rule, reason } => {
                assert_eq!(rule, RuleKind::Command);
                assert!(reason.contains("ignored"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(s, &bot(), &group(), &msg(OWNER, "/picortex louder")),
            Verdict::Command(OwnerCommand::Louder)
        );
        assert_eq!(
            decide(s, &bot(), &group(), &msg(OWNER, "pi status")),
            Verdict::Command(OwnerCommand::Status)
        );
        // The reason records that it was addressed.
        let v = decide(s, &bot(), &group(), &msg(ALICE, "pi?"));
        assert!(matches!(v, Verdict::Skip { reason, .. } if reason.contains("mentions")));
    }

    #[test]
    fn commands_from_others_are_refused() {
        for mode in [
            AttentionMode::DiscriminateQuiet,
            AttentionMode::Discriminate,
            AttentionMode::MentionsOnly,
            AttentionMode::Always,
        ] {
            for text in [
                "/picortex attention always",
                "/picortex status",
                "/picortex help",
                "/picortex louder",
                "/picortex quieter",
                "/picortex reset",
                "/picortex frobnicate",
                "pi, be quieter here",
            ] {
                let v = decide(mode, &bot(), &group(), &msg(ALICE, text));
                assert!(matches!(v, Verdict::Refuse { .. }), "{text}: {v:?}");
            }
        }
        let no_owner = ChatFacts {
            owner: None,
            ..group()
        };
        let v = decide(
            AttentionMode::Always,
            &bot(),
            &no_owner,
            &msg(OWNER, "/picortex status"),
        );
        assert!(matches!(v, Verdict::Refuse { reason } if reason.contains("no owner")));
    }

    #[test]
    fn owner_commands_in_any_chat_and_any_mode() {
        for mode in AttentionMode::ALL {
            for chat in [group(), dm()] {
                assert_eq!(
                    decide(
                        mode,
                        &bot(),
                        &chat,
                        &msg(OWNER, "/picortex attention quiet")
                    ),
                    Verdict::Command(OwnerCommand::Attention(AttentionMode::DiscriminateQuiet))
                );
                assert_eq!(
                    decide(mode, &bot(), &chat, &msg(OWNER, "/picortex nope")),
                    Verdict::Command(OwnerCommand::Unknown("nope".into()))
                );
            }
        }
        // The owner's handle in another spelling.
        assert_eq!(
            decide(
                AttentionMode::MentionsOnly,
                &bot(),
                &group(),
                &msg("+1 555 010 0099", "/picortex status")
            ),
            Verdict::Command(OwnerCommand::Status)
        );
        // The owner chatting is not a command.
        let v = decide(
            AttentionMode::MentionsOnly,
            &bot(),
            &group(),
            &msg(OWNER, "status update: I'm late"),
        );
        assert_eq!(rule_of(&v), Some(RuleKind::Mode));
    }

    #[test]
    fn non_text_in_each_mode() {
        let mut photo = msg(ALICE, "");
        photo.has_non_text = true;
        let expect = [
            (AttentionMode::Silent, false, RuleKind::Mode),
            (AttentionMode::DiscriminateQuiet, false, RuleKind::NonText),
            (AttentionMode::Discriminate, false, RuleKind::NonText),
            (AttentionMode::MentionsOnly, false, RuleKind::NonText),
            (AttentionMode::Always, true, RuleKind::Mode),
        ];
        for (mode, answers, rule) in expect {
            for chat in [group(), dm()] {
                let v = decide(mode, &bot(), &chat, &photo);
                assert_eq!(responds(&v), answers, "{mode}: {v:?}");
                assert_eq!(rule_of(&v), Some(rule), "{mode}");
            }
        }
        // With a mention (a caption), an attachment is answered in every mode but silent.
        let mut captioned = msg(ALICE, "pi what is this?");
        captioned.has_non_text = true;
        for mode in AttentionMode::ALL {
            let v = decide(mode, &bot(), &group(), &captioned);
            assert_eq!(responds(&v), mode != AttentionMode::Silent, "{mode}");
        }
        // A reply to the bot with a photo is addressed as directly as a mention.
        let mut reply = photo.clone();
        reply.replies_to_bot = true;
        let v = decide(AttentionMode::MentionsOnly, &bot(), &group(), &reply);
        assert_eq!(rule_of(&v), Some(RuleKind::ReplyToBot));
        // Text with an attachment is judged on its text.
        let mut both = msg(ALICE, "can anyone read this error?");
        both.has_non_text = true;
        assert_eq!(
            decide(AttentionMode::Discriminate, &bot(), &group(), &both),
            Verdict::AskModel
        );
        assert_eq!(
            rule_of(&decide(
                AttentionMode::MentionsOnly,
                &bot(),
                &group(),
                &both
            )),
            Some(RuleKind::Mode)
        );
    }

    #[test]
    fn empty_messages_are_skipped() {
        for mode in AttentionMode::ALL {
            let v = decide(mode, &bot(), &dm(), &msg(ALICE, "  "));
            assert!(!responds(&v));
        }
        let v = decide(AttentionMode::Always, &bot(), &dm(), &msg(ALICE, ""));
        assert_eq!(rule_of(&v), Some(RuleKind::Empty));
    }

    #[test]
    fn rule_kind_names() {
        assert_eq!(RuleKind::ReplyToBot.as_str(), "reply_to_bot");
        assert_eq!(RuleKind::NonText.to_string(), "non_text");
        assert_eq!(format!("{:?}", RuleKind::Mention), "Mention");
    }
}
