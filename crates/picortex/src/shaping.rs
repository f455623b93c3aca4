//! Reply shaping: what a phone shows of an agent's markdown answer.
//!
//! iMessage and SMS render no markdown, so this module owns the two steps between an agent's
//! final answer and the outbox rows that carry it:
//!
//! - [`markdown_to_text`] rewrites markdown as plain text that reads well in a chat bubble:
//!   emphasis markers dropped, headings as their own line, lists as `•` lines, links as
//!   `text (url)`, tables as `Header: cell` lines, code kept verbatim;
//! - [`split_message`] cuts text longer than one message at the most natural boundary;
//! - [`shape_reply`] does both and, in addition, keeps a code block (and a heading with the
//!   first line under it) in one message whenever it fits in one.
//!
//! # Design
//!
//! - **Parsing.** The markdown is parsed with `pulldown-cmark` (CommonMark plus GFM tables,
//!   strikethrough, task lists and `[!NOTE]` alerts), not with hand-rolled rules: a real parser
//!   gets nesting, code spans, escapes (`\*`), entities and CommonMark's intraword-`_` rule right.
//!   On top of it, emphasis that is glued to the text around it is put back as written, so
//!   arithmetic (`2*3*4`), globs (`src/*.rs`) and Python names (`__init__.py`, `__main__`) survive;
//!   single-tilde "strikethrough" is kept too (`~` usually means "about" in prose).
//! - **Line breaks.** A single newline inside a paragraph is kept as a newline (markdown would
//!   join the lines): agents rarely hard-wrap prose, while lines like `Status: ok` / `Tests: 12`
//!   written one under the other are meant to stay apart.
//! - **Blocks.** Top-level blocks keep the author's spacing (blank line or not), capped at one
//!   blank line. A heading gets a blank line before it and none after it. Items of one list are
//!   never separated by blank lines (phones are narrow). Code blocks are always set apart by blank
//!   lines, flush left (also inside list items, so they paste as written).
//! - **Blockquotes** are wrapped in curly quotes (`“…”`); GitHub alerts become `Note: …`.
//! - **Length.** A message is measured in UTF-16 code units, which iMessage counts and which are
//!   never fewer than `char`s, so one limit bounds both. Only a single character wider than the
//!   limit (a limit below 2 and an astral character) can exceed it: no message could hold it.
//! - **Splitting** picks the cut points that minimise a cost over the whole text (a small dynamic
//!   programme, not a greedy fill): each message costs a little, a cut at a blank line costs
//!   nothing, at a line break a little, at a sentence end more, between words more still, and a
//!   cut inside a word (only when a stretch has no whitespace at all) most. Ties are broken
//!   towards messages of even length, so the last one is not a stub. A cut is never placed
//!   inside a UTF-8 character, between a character and the combining marks, variation selectors
//!   or skin tones that follow it, around a zero-width joiner, or inside a flag (unless one such
//!   cluster alone is wider than the limit).
//! - **No "(1/3)" counters.** The outbox delivers one chat's rows strictly in order (a row is
//!   only due once every earlier row of that chat is settled, see `store::outbox::due`), and
//!   cuts fall at natural boundaries, so the user can always tell the order; a counter would
//!   only clutter each bubble and break copying a code block that spans two messages.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use pulldown_cmark::{BlockQuoteKind, Event, LinkType, Options, Parser, Tag, TagEnd};

/// Longest single text message we send, measured in UTF-16 code units (iMessage counts those;
/// they are never fewer than `char`s, so this also caps characters). Linq and iMessage accept
/// more; we stay well below so long answers arrive as readable bubbles.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// Markdown → iMessage plain text, then split into messages of at most [`MAX_MESSAGE_CHARS`], in
/// the order they are to be sent. Empty or whitespace-only input gives no message.
///
/// Unlike [`split_message`] on the output of [`markdown_to_text`], this keeps each code block in
/// one message when it fits in one, and never ends a message with a heading.
pub fn shape_reply(markdown: &str) -> Vec<String> {
    let rendered = render(markdown);
    let mut keep = rendered.code.clone();
    keep.extend(heading_glue(&rendered.text, &rendered.headings));
    split_text(&rendered.text, MAX_MESSAGE_CHARS, &rendered.code, &keep)
}

/// Markdown → plain text that reads well in iMessage (see the module docs for the rules).
pub fn markdown_to_text(markdown: &str) -> String {
    render(markdown).text
}

/// Splits `text` into messages of at most `max_chars` UTF-16 code units each (a `max_chars` of 0
/// counts as 1), preferring blank lines, then line breaks, then sentence ends, then spaces, and
/// cutting inside a word only where a word is wider than a message or there is no whitespace to
/// cut at. Pieces are never empty and lose only the whitespace at the cuts, leading blank lines
/// and trailing whitespace (a piece starting a line keeps its indentation, so code stays
/// intact); text that fits is returned as one piece. Empty or whitespace-only text gives none.
pub fn split_message(text: &str, max_chars: usize) -> Vec<String> {
    split_text(&normalize_newlines(text), max_chars, &[], &[])
}

// ---------------------------------------------------------------------------------------------
// Markdown → text
// ---------------------------------------------------------------------------------------------

/// The plain text, with where its code blocks and heading lines are (byte ranges into `text`).
struct Rendered {
    text: String,
    code: Vec<Range<usize>>,
    headings: Vec<Range<usize>>,
}

fn normalize_newlines(text: &str) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_owned()
    }
}

fn render(markdown: &str) -> Rendered {
    let src = normalize_newlines(markdown);
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM;
    let mut renderer = Renderer {
        src: &src,
        ..Renderer::default()
    };
    for (event, range) in Parser::new_ext(&src, options).into_offset_iter() {
        renderer.event(event, range);
    }
    renderer.finish()
}

/// An inline span whose end needs work.
enum Inline {
    /// Markers dropped: nothing to do at the end.
    Plain,
    /// Emphasis kept as written: the closing marker to put back.
    Literal(String),
    /// A link whose text starts at `start` in the current sink.
    Link {
        start: usize,
        url: String,
        kind: LinkType,
    },
    /// An image whose alt text starts at `start` in the current sink.
    Image { start: usize, url: String },
}

struct Quote {
    /// `lead.len()` before this quote's opening was queued.
    mark: usize,
    /// Whether the quote closes with `”` (plain quotes do; alerts don't).
    closes: bool,
}

#[derive(Default)]
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    row: Vec<String>,
}

#[derive(Default)]
struct Renderer<'s> {
    src: &'s str,
    out: String,
    /// Newlines owed before the next line: 1 = line break, 2 = blank line.
    sep: u8,
    /// Whether the last line of `out` still takes inline content.
    line_open: bool,
    /// A heading just ended: the next block (unless code) follows on the next line.
    after_heading: bool,
    /// The last thing written was a code block.
    last_was_code: bool,
    /// Open lists, innermost last: the next number of an ordered list, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// The list marker (with any quote opening queued before it) for the next line.
    marker: Option<String>,
    /// Quote openings and alert labels queued for the next line.
    lead: String,
    quotes: Vec<Quote>,
    inlines: Vec<Inline>,
    /// `out.len()` when the open heading started.
    heading: Option<usize>,
    /// The open code block's text.
    code: Option<String>,
    table: Option<Table>,
    /// The open table cell's text.
    cell: Option<String>,
    code_ranges: Vec<Range<usize>>,
    heading_ranges: Vec<Range<usize>>,
}

impl Renderer<'_> {
    fn event(&mut self, event: Event<'_>, range: Range<usize>) {
        if let Some(code) = self.code.as_mut() {
            match event {
                Event::Text(text) => code.push_str(&text),
                Event::End(TagEnd::CodeBlock) => self.end_code_block(),
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(tag) => self.start(tag, range),
            Event::End(tag) => self.end(tag),
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.text(&text),
            Event::Html(html) => self.text(&br_to_newlines(&html)),
            Event::InlineHtml(html) => {
                if is_br(&html) {
                    self.hard_break();
                } else {
                    self.text(&html);
                }
            }
            Event::FootnoteReference(label) => self.push_inline(&format!("[^{label}]")),
            Event::SoftBreak | Event::HardBreak => self.hard_break(),
            Event::Rule => {
                self.after_heading = false;
                self.line_open = false;
                self.sep = 2;
            }
            Event::TaskListMarker(done) => {
                let mark = if done { "☑ " } else { "☐ " };
                match self.marker.as_mut() {
                    Some(marker) if marker.ends_with("• ") => {
                        marker.truncate(marker.len() - "• ".len());
                        marker.push_str(mark);
                    }
                    _ => self.push_inline(mark),
                }
            }
        }
    }

    fn start(&mut self, tag: Tag<'_>, range: Range<usize>) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.block(self.gap(range.start)),
            Tag::Heading { .. } => {
                self.block(2);
                self.heading = Some(self.out.len());
            }
            Tag::BlockQuote(kind) => {
                self.block(self.gap(range.start));
                let mark = self.lead.len();
                match kind {
                    None => self.lead.push('“'),
                    Some(kind) => self.lead.push_str(alert_label(kind)),
                }
                self.quotes.push(Quote {
                    mark,
                    closes: kind.is_none(),
                });
            }
            Tag::CodeBlock(_) => self.code = Some(String::new()),
            Tag::List(first) => {
                self.block(self.gap(range.start));
                self.lists.push(first);
            }
            Tag::Item => {
                self.line_open = false;
                self.sep = self.sep.max(1);
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let bullet = format!("{n}. ");
                        *n = n.saturating_add(1);
                        bullet
                    }
                    _ => "• ".to_owned(),
                };
                let mut marker = std::mem::take(&mut self.lead);
                marker.push_str(&bullet);
                self.marker = Some(marker);
            }
            Tag::Table(_) => {
                self.block(self.gap(range.start));
                self.table = Some(Table::default());
            }
            Tag::TableHead | Tag::TableRow => {
                if let Some(table) = self.table.as_mut() {
                    table.row.clear();
                }
            }
            Tag::TableCell => self.cell = Some(String::new()),
            Tag::Emphasis => self.start_emphasis(range, 1),
            Tag::Strong => self.start_emphasis(range, 2),
            Tag::Strikethrough => {
                let tildes = self
                    .src
                    .get(range.start..)
                    .map_or(0, |s| s.chars().take_while(|&c| c == '~').count());
                if tildes >= 2 {
                    self.inlines.push(Inline::Plain);
                } else {
                    self.push_inline("~");
                    self.inlines.push(Inline::Literal("~".to_owned()));
                }
            }
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => {
                let start = self.sink_start();
                self.inlines.push(Inline::Link {
                    start,
                    url: dest_url.to_string(),
                    kind: link_type,
                });
            }
            Tag::Image { dest_url, .. } => {
                let start = self.sink_start();
                self.inlines.push(Inline::Image {
                    start,
                    url: dest_url.to_string(),
                });
            }
            // Not enabled (footnotes, definition lists, metadata, super/subscript): their
            // content still comes through as text.
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => self.line_open = false,
            TagEnd::Heading(_) => {
                if let Some(mark) = self.heading.take()
                    && self.out.len() > mark
                {
                    let start = self.out.rfind('\n').map_or(0, |i| i + 1);
                    self.heading_ranges.push(start..self.out.len());
                }
                self.line_open = false;
                self.after_heading = true;
            }
            TagEnd::BlockQuote(_) => self.end_quote(),
            TagEnd::CodeBlock => self.end_code_block(),
            TagEnd::List(_) => {
                self.lists.pop();
                self.line_open = false;
            }
            TagEnd::Item => {
                self.marker = None;
                self.line_open = false;
            }
            TagEnd::Table => self.end_table(),
            TagEnd::TableHead => {
                if let Some(table) = self.table.as_mut() {
                    table.header = std::mem::take(&mut table.row);
                }
            }
            TagEnd::TableRow => {
                if let Some(table) = self.table.as_mut() {
                    let row = std::mem::take(&mut table.row);
                    table.rows.push(row);
                }
            }
            TagEnd::TableCell => {
                if let (Some(cell), Some(table)) = (self.cell.take(), self.table.as_mut()) {
                    table
                        .row
                        .push(cell.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Link
            | TagEnd::Image => self.end_inline(),
            _ => {}
        }
    }

    fn finish(mut self) -> Rendered {
        self.trim_trailing();
        let end = self.out.trim_end().len();
        self.out.truncate(end);
        let clamp = |r: &Range<usize>| r.start.min(end)..r.end.min(end);
        Rendered {
            code: self.code_ranges.iter().map(clamp).collect(),
            headings: self.heading_ranges.iter().map(clamp).collect(),
            text: self.out,
        }
    }

    /// Newlines wanted before a block starting at source offset `at`: inside lists always one;
    /// elsewhere a blank line where the author left one.
    fn gap(&self, at: usize) -> u8 {
        if !self.lists.is_empty() {
            return 1;
        }
        let before = self.src.get(..at).unwrap_or_default();
        let Some(newline) = before.rfind('\n') else {
            return 2;
        };
        let prev_line = before
            .get(..newline)
            .and_then(|s| s.rsplit('\n').next())
            .unwrap_or_default();
        if prev_line
            .trim_matches(|c: char| c == '>' || c.is_whitespace())
            .is_empty()
        {
            2
        } else {
            1
        }
    }

    fn block(&mut self, desired: u8) {
        let want = if self.after_heading { 1 } else { desired };
        self.after_heading = false;
        self.sep = self.sep.max(want);
        self.line_open = false;
    }

    fn trim_trailing(&mut self) {
        let len = self.out.trim_end_matches([' ', '\t']).len();
        self.out.truncate(len);
    }

    fn push_newlines(&mut self, count: u8) {
        if !self.out.is_empty() {
            for _ in 0..count {
                self.out.push('\n');
            }
        }
    }

    /// Starts a new output line (separator, indentation, list marker, quote opening) unless the
    /// current one is still open.
    fn open_line(&mut self) {
        if self.line_open {
            return;
        }
        self.trim_trailing();
        self.push_newlines(self.sep.max(1));
        self.sep = 0;
        let depth = self.lists.len();
        let indent = "  ".repeat(depth.saturating_sub(1));
        self.out.push_str(&indent);
        if let Some(marker) = self.marker.take() {
            self.out.push_str(&marker);
        } else if depth > 0 {
            self.out.push_str("  ");
        }
        let lead = std::mem::take(&mut self.lead);
        self.out.push_str(&lead);
        self.line_open = true;
        self.last_was_code = false;
        self.after_heading = false;
    }

    /// Where inline content goes now: the open table cell, or the output.
    fn sink(&mut self) -> &mut String {
        match self.cell.as_mut() {
            Some(cell) => cell,
            None => &mut self.out,
        }
    }

    fn sink_start(&mut self) -> usize {
        if self.cell.is_none() {
            self.open_line();
        }
        self.sink().len()
    }

    /// Inline text without newlines.
    fn push_inline(&mut self, s: &str) {
        if let Some(cell) = self.cell.as_mut() {
            cell.push_str(s);
            return;
        }
        let s = if self.line_open {
            s
        } else {
            s.trim_start_matches([' ', '\t'])
        };
        if s.is_empty() {
            return;
        }
        self.open_line();
        self.out.push_str(s);
    }

    fn text(&mut self, text: &str) {
        for (i, part) in text.split('\n').enumerate() {
            if i > 0 {
                self.hard_break();
            }
            self.push_inline(part);
        }
    }

    fn hard_break(&mut self) {
        if self.cell.is_some() || self.heading.is_some() {
            self.push_inline(" ");
        } else if self.line_open {
            self.line_open = false;
            self.sep = self.sep.max(1);
        } else {
            self.sep = (self.sep + 1).min(2);
        }
    }

    fn start_emphasis(&mut self, range: Range<usize>, width: usize) {
        let src = self.src;
        let open = src.get(range.start..range.start + width);
        let close = src.get(range.end.saturating_sub(width)..range.end);
        let inner = src.get(range.start + width..range.end.saturating_sub(width));
        match (open, close, inner) {
            (Some(open), Some(close), Some(inner))
                if open.chars().all(|c| c == '*' || c == '_')
                    && keep_emphasis_literal(src, &range, open, inner) =>
            {
                self.push_inline(open);
                self.inlines.push(Inline::Literal(close.to_owned()));
            }
            _ => self.inlines.push(Inline::Plain),
        }
    }

    fn end_inline(&mut self) {
        match self.inlines.pop() {
            Some(Inline::Literal(close)) => self.push_inline(&close),
            Some(Inline::Link { start, url, kind }) => {
                let sink = self.sink();
                let start = start.min(sink.len());
                let text = sink.get(start..).unwrap_or_default().trim().to_owned();
                let url = url.strip_prefix("mailto:").unwrap_or(&url);
                if matches!(kind, LinkType::Autolink | LinkType::Email)
                    || url.is_empty()
                    || url.starts_with('#')
                {
                    // The text is the address already, or there is nothing useful to add.
                } else if text.is_empty() || same_target(&text, url) {
                    truncate_at(sink, start);
                    sink.push_str(url);
                } else {
                    sink.push_str(" (");
                    sink.push_str(url);
                    sink.push(')');
                }
            }
            Some(Inline::Image { start, url }) => {
                let sink = self.sink();
                let start = start.min(sink.len());
                let alt = sink.get(start..).unwrap_or_default().trim().to_owned();
                truncate_at(sink, start);
                if !alt.is_empty() {
                    sink.push_str(&alt);
                    sink.push_str(": ");
                }
                sink.push_str(&url);
            }
            Some(Inline::Plain) | None => {}
        }
    }

    fn end_code_block(&mut self) {
        let Some(code) = self.code.take() else {
            return;
        };
        let lines: Vec<&str> = code.lines().map(str::trim_end).collect();
        let first = lines.iter().position(|l| !l.is_empty());
        let last = lines.iter().rposition(|l| !l.is_empty());
        let (Some(first), Some(last)) = (first, last) else {
            return;
        };
        self.after_heading = false;
        let sep = if self.marker.is_some() || !self.lead.is_empty() {
            // A list marker or quote opening waiting for content: it gets a line of its own.
            self.open_line();
            1
        } else {
            2
        };
        self.trim_trailing();
        self.push_newlines(sep);
        let start = self.out.len();
        for (i, line) in lines.iter().take(last + 1).skip(first).enumerate() {
            if i > 0 {
                self.out.push('\n');
            }
            self.out.push_str(line);
        }
        self.code_ranges.push(start..self.out.len());
        self.sep = 2;
        self.line_open = false;
        self.last_was_code = true;
    }

    fn end_quote(&mut self) {
        let Some(quote) = self.quotes.pop() else {
            return;
        };
        if self.lead.len() > quote.mark {
            // Nothing was written inside: drop the queued opening.
            truncate_at(&mut self.lead, quote.mark);
            return;
        }
        if quote.closes {
            self.trim_trailing();
            if self.last_was_code {
                self.out.push('\n');
            }
            self.out.push('”');
            self.last_was_code = false;
        }
        self.line_open = false;
    }

    fn end_table(&mut self) {
        let Some(table) = self.table.take() else {
            return;
        };
        for line in table_lines(&table.header, &table.rows) {
            self.push_inline(&line);
            self.line_open = false;
        }
    }
}

/// `String::truncate` that backs off to a character boundary instead of panicking.
fn truncate_at(s: &mut String, mut at: usize) {
    while at > 0 && !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
}

fn alert_label(kind: BlockQuoteKind) -> &'static str {
    match kind {
        BlockQuoteKind::Note => "Note: ",
        BlockQuoteKind::Tip => "Tip: ",
        BlockQuoteKind::Important => "Important: ",
        BlockQuoteKind::Warning => "Warning: ",
        BlockQuoteKind::Caution => "Caution: ",
    }
}

/// Python's dunder names, which `__name__` would otherwise turn into bold "name".
const DUNDERS: &[&str] = &[
    "init",
    "main",
    "name",
    "file",
    "doc",
    "dict",
    "class",
    "call",
    "repr",
    "str",
    "len",
    "iter",
    "next",
    "enter",
    "exit",
    "aenter",
    "aexit",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "hash",
    "new",
    "del",
    "slots",
    "all",
    "version",
    "module",
    "getattr",
    "getattribute",
    "setattr",
    "delattr",
    "getitem",
    "setitem",
    "delitem",
    "contains",
    "bool",
    "post_init",
    "init_subclass",
    "annotations",
    "future",
    "builtins",
    "pycache",
    "qualname",
    "wrapped",
    "spec",
    "loader",
    "package",
    "path",
    "debug",
    "add",
    "sub",
    "mul",
    "format",
    "bytes",
    "get",
    "set",
    "await",
];

/// Whether emphasis delimited by `open` should stay as written because it is not emphasis at
/// all: `2*3*4`, `src/*.rs and tests/*.rs`, `__init__.py`, `__main__`.
fn keep_emphasis_literal(src: &str, range: &Range<usize>, open: &str, inner: &str) -> bool {
    // Delimiters of enclosing spans (`***a***`, `**_a_**`) are looked past: they go too.
    let delimiter = |c: &char| matches!(c, '*' | '_' | '~');
    let mut before_chars = src.get(..range.start).unwrap_or_default().chars().rev();
    let before = before_chars.find(|c| !delimiter(c));
    let mut after = src
        .get(range.end..)
        .unwrap_or_default()
        .chars()
        .skip_while(delimiter);
    let (a1, a2) = (after.next(), after.next());
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let joiner = |c: Option<char>| c.is_some_and(|c| matches!(c, '.' | '/' | '\\'));
    let left = word(before) || joiner(before);
    let right = word(a1) || (joiner(a1) && a2.is_some_and(char::is_alphanumeric));
    if open.starts_with('_') {
        left || right || (open == "__" && DUNDERS.contains(&inner))
    } else {
        left && right
    }
}

fn is_br(tag: &str) -> bool {
    let inner = tag.trim().trim_start_matches('<').trim_end_matches('>');
    inner
        .trim()
        .trim_end_matches('/')
        .trim()
        .eq_ignore_ascii_case("br")
}

/// Replaces `<br>`, `<br/>` and `<br />` with newlines; other tags stay as text.
fn br_to_newlines(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let tail = rest.get(i..).unwrap_or_default();
        match tail.find('>') {
            Some(j) if is_br(tail.get(..=j).unwrap_or_default()) => {
                out.push('\n');
                rest = tail.get(j + 1..).unwrap_or_default();
            }
            _ => {
                out.push('<');
                rest = tail.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether a link's text says no more than its address (`https://a.b/` vs `a.b`).
fn same_target(text: &str, url: &str) -> bool {
    fn bare(s: &str) -> String {
        let s = s.trim();
        let s = ["https://", "http://", "mailto:"]
            .iter()
            .find_map(|p| s.strip_prefix(p))
            .unwrap_or(s);
        s.trim_end_matches('/').to_lowercase()
    }
    bare(text) == bare(url)
}

/// One line per body row: `cell1: cell2` for two columns, else `Header: cell, …`; empty cells
/// are left out. A table with no body gives its header as one line.
fn table_lines(header: &[String], rows: &[Vec<String>]) -> Vec<String> {
    if rows.is_empty() {
        let line = header
            .iter()
            .filter(|h| !h.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        return if line.is_empty() {
            Vec::new()
        } else {
            vec![line]
        };
    }
    let columns = rows
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(header.len());
    let mut lines = Vec::new();
    for row in rows {
        let line = if columns == 2 {
            let cells: Vec<&str> = row
                .iter()
                .map(String::as_str)
                .filter(|c| !c.is_empty())
                .collect();
            cells.join(": ")
        } else {
            row.iter()
                .enumerate()
                .filter(|(_, cell)| !cell.is_empty())
                .map(|(i, cell)| match header.get(i).filter(|h| !h.is_empty()) {
                    Some(h) => format!("{h}: {cell}"),
                    None => cell.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// For each heading line, the range from it through the end of the first line after it, so a
/// message never ends on a heading.
fn heading_glue(text: &str, headings: &[Range<usize>]) -> Vec<Range<usize>> {
    headings
        .iter()
        .filter_map(|h| {
            let after = text.get(h.end..)?;
            let next = h.end + (after.len() - after.trim_start().len());
            let rest = text.get(next..).filter(|r| !r.is_empty())?;
            let line_end = rest.find('\n').map_or(text.len(), |i| next + i);
            Some(h.start..line_end)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Splitting
// ---------------------------------------------------------------------------------------------

/// What a message costs in the split optimisation, against the cut penalties below: one extra
/// message is worth less than one cut at a sentence end, but more than one at a line break.
const MESSAGE_COST: u32 = 3;
const PARAGRAPH_CUT: u32 = 0;
const LINE_CUT: u32 = 1;
const SENTENCE_CUT: u32 = 4;
const SPACE_CUT: u32 = 8;
const HARD_CUT: u32 = 40;
/// Added when a message would end on a colon ("Steps:"), away from what it introduces.
const COLON_END: u32 = 3;

/// Words whose final period does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g.", "i.e.", "vs.", "cf.", "etc.)", "approx.", "mr.", "dr.",
];

/// A place to cut: the message ends at `cut` (trailing whitespace excluded) and the next one
/// starts at `resume` (a line start keeps its indentation).
struct Cut {
    cut: usize,
    resume: usize,
    penalty: u32,
    /// Inside a keep-together range that fits in one message.
    blocked: bool,
}

/// UTF-16 code units before each byte offset (a byte inside a character counts as its start).
struct Units(Vec<usize>);

impl Units {
    fn new(text: &str) -> Self {
        let mut before = vec![0; text.len() + 1];
        let mut acc = 0;
        for (i, c) in text.char_indices() {
            for slot in before.iter_mut().skip(i).take(c.len_utf8()) {
                *slot = acc;
            }
            acc += c.len_utf16();
        }
        if let Some(last) = before.last_mut() {
            *last = acc;
        }
        Self(before)
    }

    fn at(&self, i: usize) -> usize {
        self.0.get(i).or(self.0.last()).copied().unwrap_or_default()
    }

    fn width(&self, from: usize, to: usize) -> usize {
        self.at(to).saturating_sub(self.at(from))
    }

    /// The furthest character boundary `b` in `from..=end` with `width(from, b) <= max`.
    fn limit(&self, text: &str, from: usize, end: usize, max: usize) -> usize {
        let base = self.at(from);
        let fits = self
            .0
            .get(from..=end)
            .map_or(1, |s| s.partition_point(|&u| u.saturating_sub(base) <= max));
        let mut b = from + fits.saturating_sub(1);
        while b > from && !text.is_char_boundary(b) {
            b -= 1;
        }
        b
    }
}

type Cost = (u32, u64);

#[derive(Clone, Copy)]
struct State {
    cost: Cost,
    /// The state before this one and where its message ended.
    from: Option<(usize, usize)>,
}

/// The splitter: `verbatim` ranges are code (no sentence logic inside), `keep` ranges are never
/// cut when they fit in one message.
fn split_text(
    text: &str,
    max_chars: usize,
    verbatim: &[Range<usize>],
    keep: &[Range<usize>],
) -> Vec<String> {
    let Some(first) = text.find(|c: char| !c.is_whitespace()) else {
        return Vec::new();
    };
    let start = line_start(text, first);
    let end = text.trim_end().len();
    let max = max_chars.max(1);
    let units = Units::new(text);
    let piece = |from: usize, to: usize| text.get(from..to).unwrap_or_default().trim_end();
    if units.width(start, end) <= max {
        return vec![piece(start, end).to_owned()];
    }

    let mut cuts = find_cuts(text, start, end, verbatim);
    for cut in &mut cuts {
        cut.blocked = keep.iter().any(|r| {
            let (s, e) = (r.start.min(end), r.end.min(end));
            s < e && units.width(s, e) <= max && cut.cut < e && cut.resume > s
        });
    }

    let slack = |w: usize| {
        let s = max.saturating_sub(w) as u64;
        s.saturating_mul(s)
    };
    let add = |c: Cost, p: u32, s: u64| (c.0.saturating_add(p), c.1.saturating_add(s));
    let mut states = States {
        at_cut: vec![None; cuts.len()],
        other: BTreeMap::new(),
        pending: BTreeSet::new(),
    };
    states.relax(&cuts, start, (0, 0), None);
    let mut best: Option<(Cost, usize)> = None;
    let mut cursor = start;
    while let Some(&pos) = states.pending.range(cursor..).next() {
        cursor = pos + 1;
        let Some(State { cost, .. }) = states.get(&cuts, pos) else {
            continue;
        };
        let rest = units.width(pos, end);
        if rest <= max {
            let total = add(cost, MESSAGE_COST, slack(rest));
            if best.is_none_or(|(b, _)| total < b) {
                best = Some((total, pos));
            }
            continue;
        }
        let limit = units.limit(text, pos, end, max);
        let content = text
            .get(pos..end)
            .and_then(|s| s.find(|c: char| !c.is_whitespace()))
            .map_or(end, |i| pos + i);
        let lo = cuts.partition_point(|c| c.cut <= pos);
        let hi = cuts.partition_point(|c| c.cut <= limit);
        let mut found = false;
        for i in lo..hi {
            let Some(cut) = cuts.get(i) else { break };
            if cut.blocked || cut.cut <= content || cut.resume <= pos {
                continue;
            }
            found = true;
            let width = units.width(pos, cut.cut);
            let total = add(cost, MESSAGE_COST + cut.penalty, slack(width));
            states.relax_cut(i, cut.resume, total, Some((pos, cut.cut)));
        }
        if !found || inside_long_word(text, &units, limit, max) {
            let cut = hard_cut(text, pos, limit);
            let resume = skip_gap(text, cut, end);
            let total = add(cost, MESSAGE_COST + HARD_CUT, slack(units.width(pos, cut)));
            states.relax(&cuts, resume, total, Some((pos, cut)));
        }
    }

    let Some((_, last)) = best else {
        return vec![piece(start, end).to_owned()];
    };
    let mut pieces = vec![piece(last, end)];
    let mut at = last;
    while let Some((prev, cut)) = states.get(&cuts, at).and_then(|s| s.from)
        && prev < at
    {
        pieces.push(piece(prev, cut));
        at = prev;
    }
    pieces.reverse();
    pieces
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// The best way found so far to reach each place a message can start.
struct States {
    /// At each cut's `resume`, by cut index.
    at_cut: Vec<Option<State>>,
    /// Elsewhere: the start, and after hard cuts.
    other: BTreeMap<usize, State>,
    /// Every position that has a state, to visit them in order.
    pending: BTreeSet<usize>,
}

impl States {
    fn get(&self, cuts: &[Cut], at: usize) -> Option<State> {
        match cuts.binary_search_by_key(&at, |c| c.resume) {
            Ok(i) => self.at_cut.get(i).copied().flatten(),
            Err(_) => self.other.get(&at).copied(),
        }
    }

    fn relax(&mut self, cuts: &[Cut], at: usize, cost: Cost, from: Option<(usize, usize)>) {
        match cuts.binary_search_by_key(&at, |c| c.resume) {
            Ok(i) => self.relax_cut(i, at, cost, from),
            Err(_) => {
                if self.other.get(&at).is_none_or(|s| cost < s.cost) {
                    self.other.insert(at, State { cost, from });
                    self.pending.insert(at);
                }
            }
        }
    }

    fn relax_cut(&mut self, index: usize, at: usize, cost: Cost, from: Option<(usize, usize)>) {
        if let Some(slot) = self.at_cut.get_mut(index)
            && slot.is_none_or(|s| cost < s.cost)
        {
            *slot = Some(State { cost, from });
            self.pending.insert(at);
        }
    }
}

fn line_start(text: &str, at: usize) -> usize {
    text.get(..at)
        .and_then(|s| s.rfind('\n'))
        .map_or(0, |i| i + 1)
}

/// Every place in `text[start..end]` where a message may end, in order.
fn find_cuts(text: &str, start: usize, end: usize, verbatim: &[Range<usize>]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    let mut previous_end: Option<usize> = None;
    let mut saw_blank = false;
    let mut pos = start;
    while pos < end {
        let line_end = text
            .get(pos..end)
            .and_then(|s| s.find('\n'))
            .map_or(end, |i| pos + i);
        let line = text.get(pos..line_end).unwrap_or_default();
        if line.trim().is_empty() {
            saw_blank = true;
        } else {
            if let Some(prev) = previous_end {
                let penalty = if saw_blank { PARAGRAPH_CUT } else { LINE_CUT };
                cuts.push(cut_at(text, prev, pos, penalty));
            }
            let content_end = pos + line.trim_end().len();
            let indent = line.len() - line.trim_start().len();
            line_cuts(text, pos + indent, content_end, verbatim, &mut cuts);
            previous_end = Some(content_end);
            saw_blank = false;
        }
        pos = line_end + 1;
    }
    cuts
}

fn cut_at(text: &str, cut: usize, resume: usize, penalty: u32) -> Cut {
    let colon = text.get(..cut).is_some_and(|s| s.ends_with(':'));
    Cut {
        cut,
        resume,
        penalty: penalty + if colon { COLON_END } else { 0 },
        blocked: false,
    }
}

/// Cuts at the runs of spaces inside one line's content `text[from..to]`.
fn line_cuts(text: &str, from: usize, to: usize, verbatim: &[Range<usize>], cuts: &mut Vec<Cut>) {
    let Some(line) = text.get(from..to) else {
        return;
    };
    let mut run_start: Option<usize> = None;
    for (i, c) in line.char_indices() {
        if c == ' ' || c == '\t' {
            run_start.get_or_insert(i);
            continue;
        }
        let Some(run) = run_start.take() else {
            continue;
        };
        let before = line.get(..run).unwrap_or_default();
        if !before.contains(char::is_whitespace) && is_list_marker(before) {
            continue;
        }
        let in_code = verbatim.iter().any(|r| r.contains(&(from + run)));
        let sentence = !in_code && !c.is_lowercase() && ends_sentence(before);
        let penalty = if sentence { SENTENCE_CUT } else { SPACE_CUT };
        cuts.push(cut_at(text, from + run, from + i, penalty));
    }
}

fn is_list_marker(word: &str) -> bool {
    if matches!(word, "•" | "-" | "*" | "+" | "☐" | "☑" | "“•" | "“") {
        return true;
    }
    let digits = word.trim_end_matches(['.', ')']);
    digits.len() + 1 == word.len()
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

fn ends_sentence(before: &str) -> bool {
    let t = before.trim_end_matches(['"', '\'', ')', ']', '”', '’', '*', '_', '`']);
    match t.chars().next_back() {
        Some('!' | '?' | '…' | '。' | '！' | '？') => true,
        Some('.') => {
            let word = before
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or_default();
            let lower = word.to_lowercase();
            // "e.g.", "vs.", and initials ("J.") do not end sentences.
            !ABBREVIATIONS.contains(&lower.as_str()) && t.chars().rev().nth(2).is_some()
        }
        _ => false,
    }
}

/// Where to cut a stretch with no usable whitespace: as far as fits, backed off so no
/// grapheme-ish cluster is split; at least one character, so the split always advances.
fn hard_cut(text: &str, from: usize, limit: usize) -> usize {
    let mut b = limit;
    while b > from && !can_break(text, b) {
        b = text
            .get(..b)
            .and_then(|s| s.char_indices().next_back())
            .map_or(from, |(i, _)| i);
    }
    if b > from {
        return b;
    }
    let mut b = limit;
    if b <= from {
        b = from
            + text
                .get(from..)
                .and_then(|s| s.chars().next())
                .map_or(1, char::len_utf8);
    }
    b
}

/// Whether `at` falls inside a run of non-whitespace wider than `max`, which has to be cut
/// somewhere anyway.
fn inside_long_word(text: &str, units: &Units, at: usize, max: usize) -> bool {
    let (Some(before), Some(after)) = (text.get(..at), text.get(at..)) else {
        return false;
    };
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let end = after
        .find(char::is_whitespace)
        .map_or(text.len(), |i| at + i);
    start < at && at < end && units.width(start, end) > max
}

/// Where the next message starts after a hard cut at `cut`.
fn skip_gap(text: &str, cut: usize, end: usize) -> usize {
    let rest = text.get(cut..end).unwrap_or_default();
    let after_spaces = rest.trim_start_matches([' ', '\t']);
    if after_spaces.is_empty() || after_spaces.starts_with('\n') {
        let next = rest
            .find(|c: char| !c.is_whitespace())
            .map_or(end, |i| cut + i);
        line_start(text, next).max(cut)
    } else if cut == 0 || text.get(..cut).is_some_and(|s| s.ends_with('\n')) {
        cut
    } else {
        cut + (rest.len() - after_spaces.len())
    }
}

/// Whether a message may end at byte `at` without splitting a user-perceived character.
fn can_break(text: &str, at: usize) -> bool {
    let (Some(before), Some(after)) = (text.get(..at), text.get(at..)) else {
        return false;
    };
    let (Some(prev), Some(next)) = (before.chars().next_back(), after.chars().next()) else {
        return true;
    };
    if prev == '\u{200D}' || extends(next) {
        return false;
    }
    if is_regional_indicator(prev) && is_regional_indicator(next) {
        // Flags are pairs: break only after an even number of indicators.
        let run = before
            .chars()
            .rev()
            .take_while(|&c| is_regional_indicator(c))
            .count();
        return run % 2 == 0;
    }
    true
}

/// Characters that attach to the one before them.
fn extends(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{0483}'..='\u{0489}'
        | '\u{0591}'..='\u{05BD}'
        | '\u{0610}'..='\u{061A}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0900}'..='\u{0903}'
        | '\u{093A}'..='\u{094F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{200C}'..='\u{200D}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{FE20}'..='\u{FE2F}'
        | '\u{1F3FB}'..='\u{1F3FF}'
        | '\u{E0020}'..='\u{E007F}'
        | '\u{E0100}'..='\u{E01EF}')
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(md: &str) -> String {
        markdown_to_text(md)
    }

    fn utf16(s: &str) -> usize {
        s.encode_utf16().count()
    }

    fn non_ws(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// The invariants every split must keep.
    fn check_split(input: &str, pieces: &[String], max: usize) {
        for p in pieces {
            assert!(!p.trim().is_empty(), "empty piece in {pieces:?}");
            assert!(utf16(p) <= max, "piece of {} > {max}: {p:?}", utf16(p));
            assert_eq!(p.trim_end(), p, "trailing whitespace kept");
        }
        assert_eq!(
            non_ws(&pieces.concat()),
            non_ws(input),
            "content lost or reordered"
        );
    }

    // --- inline markers ---

    #[test]
    fn emphasis_markers_are_dropped() {
        assert_eq!(text("a **bold** b"), "a bold b");
        assert_eq!(text("a __bold__ b"), "a bold b");
        assert_eq!(text("a *em* b"), "a em b");
        assert_eq!(text("a _em_ b"), "a em b");
        assert_eq!(text("a ~~gone~~ b"), "a gone b");
        assert_eq!(text("***both*** and **_mixed_**"), "both and mixed");
        assert_eq!(text("**Note:** read this."), "Note: read this.");
        assert_eq!(text("the **API**s"), "the APIs");
    }

    #[test]
    fn identifiers_and_paths_are_not_emphasis() {
        let s = "Call my_function_name with MAX_RETRY_COUNT and some_var_ here.";
        assert_eq!(text(s), s);
        let s = "Edit src/my_file.rs, src/__init__.py and pkg/__main__.py.";
        assert_eq!(text(s), s);
        assert_eq!(
            text("Run __init__ then __main__."),
            "Run __init__ then __main__."
        );
        assert_eq!(text("Touch __init__.py first."), "Touch __init__.py first.");
        assert_eq!(
            text("Match src/*.rs and tests/*.rs"),
            "Match src/*.rs and tests/*.rs"
        );
        assert_eq!(
            text("Globs like src/**/*.rs work"),
            "Globs like src/**/*.rs work"
        );
        assert_eq!(text("Use *args and **kwargs."), "Use *args and **kwargs.");
        assert_eq!(
            text("https://example.com/some_path_with_words_here"),
            "https://example.com/some_path_with_words_here"
        );
    }

    #[test]
    fn arithmetic_is_not_emphasis() {
        assert_eq!(text("2*3*4 = 24"), "2*3*4 = 24");
        assert_eq!(text("a*b*c and x*y*z"), "a*b*c and x*y*z");
        assert_eq!(text("2 * 3 * 4 = 24"), "2 * 3 * 4 = 24");
        assert_eq!(text("2*3 and 4*5"), "2*3 and 4*5");
        assert_eq!(text("2*(3+4)*5"), "2*(3+4)*5");
    }

    #[test]
    fn single_tilde_and_escapes_stay() {
        assert_eq!(text("takes ~5 min, not ~10"), "takes ~5 min, not ~10");
        assert_eq!(text("a ~b~ c"), "a ~b~ c");
        assert_eq!(
            text(r"\*not em\* and \# not heading"),
            "*not em* and # not heading"
        );
        assert_eq!(text("AT&amp;T &lt;3"), "AT&T <3");
    }

    // --- blocks ---

    #[test]
    fn headings_become_their_own_line() {
        assert_eq!(text("# Title"), "Title");
        assert_eq!(text("# Title\n\nBody text."), "Title\nBody text.");
        assert_eq!(text("Intro.\n## Sub ##\nBody."), "Intro.\n\nSub\nBody.");
        assert_eq!(text("Setext\n======\n\nBody"), "Setext\nBody");
        assert_eq!(text("# A\n## B\ntext"), "A\nB\ntext");
    }

    #[test]
    fn bullets_become_dots_with_nesting() {
        assert_eq!(text("- one\n- two"), "• one\n• two");
        assert_eq!(text("* one\n* two"), "• one\n• two");
        assert_eq!(text("+ one\n+ two"), "• one\n• two");
        assert_eq!(
            text("- a\n  - b\n    - c\n  - d\n- e"),
            "• a\n  • b\n    • c\n  • d\n• e"
        );
        assert_eq!(text("- a\n\n- b\n\n- c"), "• a\n• b\n• c");
        assert_eq!(text("- a **bold** item"), "• a bold item");
        assert_eq!(
            text("- first line\n  second line"),
            "• first line\n  second line"
        );
    }

    #[test]
    fn numbered_lists_stay_numbered() {
        assert_eq!(text("1. a\n2. b\n3. c"), "1. a\n2. b\n3. c");
        assert_eq!(text("1. a\n1. b"), "1. a\n2. b");
        assert_eq!(text("3. a\n4. b"), "3. a\n4. b");
        assert_eq!(
            text("1. a\n   - x\n   - y\n2. b"),
            "1. a\n  • x\n  • y\n2. b"
        );
        assert_eq!(text("- a\n  1. x\n  2. y"), "• a\n  1. x\n  2. y");
    }

    #[test]
    fn list_after_a_paragraph_keeps_the_authors_spacing() {
        assert_eq!(text("Changes:\n- a\n- b"), "Changes:\n• a\n• b");
        assert_eq!(
            text("Changes:\n\n- a\n- b\n\nDone."),
            "Changes:\n\n• a\n• b\n\nDone."
        );
    }

    #[test]
    fn task_lists_get_boxes() {
        assert_eq!(text("- [ ] todo\n- [x] done"), "☐ todo\n☑ done");
    }

    #[test]
    fn links_and_images() {
        assert_eq!(
            text("See [the docs](https://docs.rs/x)."),
            "See the docs (https://docs.rs/x)."
        );
        assert_eq!(text("[https://a.b/c](https://a.b/c)"), "https://a.b/c");
        assert_eq!(text("[a.b/c](https://a.b/c/)"), "https://a.b/c/");
        assert_eq!(
            text("Go to https://a.b/c_d_e now"),
            "Go to https://a.b/c_d_e now"
        );
        assert_eq!(text("<https://a.b/c>"), "https://a.b/c");
        assert_eq!(text("<me@a.b>"), "me@a.b");
        assert_eq!(text("[mail](mailto:me@a.b)"), "mail (me@a.b)");
        assert_eq!(
            text("![a cat](https://a.b/cat.png)"),
            "a cat: https://a.b/cat.png"
        );
        assert_eq!(text("![](https://a.b/cat.png)"), "https://a.b/cat.png");
        assert_eq!(
            text("[**bold** link](https://x.y)"),
            "bold link (https://x.y)"
        );
        assert_eq!(text("[top](#section)"), "top");
        assert_eq!(text("[x][1]\n\n[1]: https://x.y"), "x (https://x.y)");
    }

    #[test]
    fn inline_code_keeps_its_content() {
        assert_eq!(text("Run `cargo test` now"), "Run cargo test now");
        assert_eq!(text("`**not bold**` and `a_b_c`"), "**not bold** and a_b_c");
        assert_eq!(text("`` `tick` ``"), "`tick`");
    }

    #[test]
    fn fenced_code_is_verbatim_and_set_apart() {
        let md = "Try this:\n```rust\nfn main() {\n    let x = 2*3*4; // **not bold**\n\n\n    # not a heading\n}\n```\nThen run it.";
        assert_eq!(
            text(md),
            "Try this:\n\nfn main() {\n    let x = 2*3*4; // **not bold**\n\n\n    # not a heading\n}\n\nThen run it."
        );
        assert_eq!(text("```\n  indented\n```"), "  indented");
        assert_eq!(
            text("~~~py\n- not a bullet\n* nor this\n~~~"),
            "- not a bullet\n* nor this"
        );
        assert_eq!(text("```\n\n```"), "");
        assert_eq!(
            text("Para.\n\n    indented code\n\nMore."),
            "Para.\n\nindented code\n\nMore."
        );
    }

    #[test]
    fn code_in_a_list_item_is_flush_left() {
        let md = "1. Install:\n   ```sh\n   cargo install x\n   ```\n2. Run it";
        assert_eq!(text(md), "1. Install:\n\ncargo install x\n\n2. Run it");
        let md = "- ```\n  code\n  ```";
        assert_eq!(text(md), "•\ncode");
    }

    #[test]
    fn tables_become_lines() {
        let md = "| Name | Type | Default |\n|------|:----:|--------:|\n| port | u16 | 8080 |\n| host | `String` | |\n";
        assert_eq!(
            text(md),
            "Name: port, Type: u16, Default: 8080\nName: host, Type: String"
        );
        let md =
            "Options:\n\n| Flag | Meaning |\n|---|---|\n| `-v` | more **logs** |\n| `-q` | quiet |";
        assert_eq!(text(md), "Options:\n\n-v: more logs\n-q: quiet");
        assert_eq!(text("| Only | Header |\n|---|---|"), "Only, Header");
    }

    #[test]
    fn blockquotes_become_quoted() {
        assert_eq!(text("> quoted text"), "“quoted text”");
        assert_eq!(
            text("He said:\n\n> line one\n> line two\n\nOk."),
            "He said:\n\n“line one\nline two”\n\nOk."
        );
        assert_eq!(text("> a\n>\n> b"), "“a\n\nb”");
        assert_eq!(text("> [!NOTE]\n> Back up first."), "Note: Back up first.");
        assert_eq!(text("> - a\n> - b"), "“• a\n• b”");
        assert_eq!(text(">"), "");
    }

    #[test]
    fn rules_blank_lines_and_trailing_spaces() {
        assert_eq!(text("a\n\n---\n\nb"), "a\n\nb");
        assert_eq!(text("a\n\n***\nb"), "a\n\nb");
        assert_eq!(text("a\n\n\n\n\nb"), "a\n\nb");
        assert_eq!(text("a   \nb\t\nc"), "a\nb\nc");
        assert_eq!(
            text("line<br>next<br/>last<br />end"),
            "line\nnext\nlast\nend"
        );
        assert_eq!(text("a<br><br><br><br>b"), "a\n\nb");
        assert_eq!(text("a\r\nb\r\n\r\nc"), "a\nb\n\nc");
    }

    #[test]
    fn other_html_stays_as_text() {
        assert_eq!(text("Press <kbd>Ctrl</kbd>+C"), "Press <kbd>Ctrl</kbd>+C");
        assert_eq!(
            text("It returns Vec<String> here"),
            "It returns Vec<String> here"
        );
        assert_eq!(
            text("<div>\nhi<br>there\n</div>"),
            "<div>\nhi\nthere\n</div>"
        );
    }

    #[test]
    fn empty_input_gives_nothing() {
        assert_eq!(text(""), "");
        assert_eq!(text("  \n\t\n "), "");
        assert!(shape_reply("").is_empty());
        assert!(shape_reply("   \n\n  ").is_empty());
        assert!(split_message("", 10).is_empty());
        assert!(split_message(" \n ", 10).is_empty());
    }

    #[test]
    fn realistic_answer() {
        let md = "\
## Summary

I fixed the **flaky test** in `src/my_file.rs`. The cause was a race in `spawn_worker`:

- The worker started *before* the channel was ready.
- `MAX_RETRIES` was read from the wrong config:
  - `retry_count` (old)
  - `max_retries` (new)

### The fix

```rust
fn spawn_worker(rx: Receiver<Job>) {
    let ready = Arc::new(Barrier::new(2));
    // wait for the channel
}
```

| File | Change |
|------|--------|
| `src/my_file.rs` | wait on barrier |
| `tests/e2e.rs` | removed sleep |

> Run `cargo test -p picortex` to check.

See [the PR](https://github.com/acme/picortex/pull/42) for details.
";
        let expected = "\
Summary
I fixed the flaky test in src/my_file.rs. The cause was a race in spawn_worker:

• The worker started before the channel was ready.
• MAX_RETRIES was read from the wrong config:
  • retry_count (old)
  • max_retries (new)

The fix

fn spawn_worker(rx: Receiver<Job>) {
    let ready = Arc::new(Barrier::new(2));
    // wait for the channel
}

src/my_file.rs: wait on barrier
tests/e2e.rs: removed sleep

“Run cargo test -p picortex to check.”

See the PR (https://github.com/acme/picortex/pull/42) for details.";
        assert_eq!(text(md), expected);
        assert_eq!(shape_reply(md), vec![expected.to_owned()]);
    }

    // --- splitting ---

    #[test]
    fn short_text_is_one_trimmed_piece() {
        assert_eq!(split_message("\n\nhello  \n", 10), vec!["hello"]);
        assert_eq!(split_message("0123456789", 10), vec!["0123456789"]);
        assert_eq!(split_message("\n\n    code\n", 10), vec!["    code"]);
    }

    #[test]
    fn prefers_paragraph_then_line_then_sentence_then_space() {
        let p = split_message("aaa bbb. ccc\nddd eee\n\nfff ggg", 20);
        assert_eq!(p, vec!["aaa bbb. ccc\nddd eee", "fff ggg"]);
        let p = split_message("aaa bbb. ccc\nddd eee fff ggg", 20);
        assert_eq!(p, vec!["aaa bbb. ccc", "ddd eee fff ggg"]);
        let p = split_message("Aaa bbb ccc. Ddd eee fff ggg", 20);
        assert_eq!(p, vec!["Aaa bbb ccc.", "Ddd eee fff ggg"]);
        let p = split_message("aaa bbb ccc ddd eee fff", 12);
        assert_eq!(p, vec!["aaa bbb ccc", "ddd eee fff"]);
    }

    #[test]
    fn a_paragraph_break_beats_a_fuller_message() {
        let a = "a".repeat(30);
        let b = "b ".repeat(90);
        let input = format!("{a}\n\n{}", b.trim_end());
        let p = split_message(&input, 200);
        assert_eq!(p, vec![a, b.trim_end().to_owned()]);
    }

    #[test]
    fn hard_cut_only_inside_overlong_words() {
        let s = "x".repeat(25);
        let p = split_message(&s, 10);
        assert_eq!(p, vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
        // A word wider than a message is cut where it fills one, not moved to a message of its own.
        let p = split_message(&format!("ok {}", "y".repeat(12)), 10);
        assert_eq!(p, vec![format!("ok {}", "y".repeat(7)), "y".repeat(5)]);
        // A word that fits in a message is not cut.
        let p = split_message(&format!("ok {}", "y".repeat(9)), 10);
        assert_eq!(p, vec!["ok".to_owned(), "y".repeat(9)]);
    }

    #[test]
    fn no_cut_after_a_list_marker() {
        let p = split_message("1. aaaa bbbb cccc", 10);
        assert!(!p.iter().any(|x| x == "1."), "{p:?}");
        check_split("1. aaaa bbbb cccc", &p, 10);
    }

    #[test]
    fn sentence_cuts_skip_abbreviations() {
        assert!(ends_sentence("It works."));
        assert!(ends_sentence("Really?"));
        assert!(ends_sentence("(done.)"));
        assert!(!ends_sentence("use e.g."));
        assert!(!ends_sentence("J."));
        assert!(!ends_sentence("word"));
    }

    #[test]
    fn five_thousand_char_answer() {
        let mut md = String::from("# Report\n\n");
        let mut n = 0;
        while md.len() < 5000 {
            n += 1;
            md.push_str(&format!(
                "Paragraph {n} explains step {n} of the **change** in `module_{n}.rs`. \
                 It has a second sentence with a [link](https://example.com/{n}).\n\n"
            ));
            if n % 4 == 0 {
                md.push_str("- first point\n- second point\n  - nested point\n\n");
            }
        }
        let shaped = markdown_to_text(&md);
        let pieces = shape_reply(&md);
        assert!(pieces.len() >= 3, "{}", pieces.len());
        check_split(&shaped, &pieces, MAX_MESSAGE_CHARS);
        let words: Vec<&str> = shaped.split_whitespace().collect();
        let joined = pieces.join("\n");
        let got: Vec<&str> = joined.split_whitespace().collect();
        assert_eq!(got, words);
        // Paragraph text is never cut: every piece ends at the end of a paragraph or list.
        for p in &pieces[..pieces.len() - 1] {
            assert!(
                p.ends_with(").") || p.ends_with("point"),
                "{:?}",
                &p[p.len() - 40..]
            );
        }
        // The heading stays with what follows it.
        assert!(pieces[0].starts_with("Report\nParagraph 1 "));
    }

    #[test]
    fn long_code_block_splits_at_lines() {
        let mut code = String::new();
        for i in 0..150 {
            code.push_str(&format!(
                "    let value_{i} = compute(\"{i}\", {i} * 2); // step {i}\n"
            ));
        }
        let md = format!("Here is the file:\n\n```rust\n{code}```\n\nDone.");
        let pieces = shape_reply(&md);
        assert!(pieces.len() >= 4);
        let shaped = markdown_to_text(&md);
        check_split(&shaped, &pieces, MAX_MESSAGE_CHARS);
        let all_lines: Vec<&str> = pieces.iter().flat_map(|p| p.lines()).collect();
        for line in code.lines() {
            assert!(
                all_lines.contains(&line.trim_end()),
                "line cut or reindented: {line}"
            );
        }
    }

    #[test]
    fn code_block_that_fits_is_not_split() {
        // 1.5k of prose, 1k of code (with blank lines), 1.4k of short paragraphs: two messages
        // would do if the code could be cut, so the plain splitter cuts it and shape_reply doesn't.
        let prose = "Some words here. ".repeat(88);
        let code: String = (0..40)
            .map(|i| format!("line {i} of code\n\nmore {i}\n"))
            .collect();
        let tail: String = (0..50)
            .map(|i| format!("Short paragraph {i:02}.\n\n"))
            .collect();
        let md = format!("{prose}\n\n```\n{code}```\n\n{tail}");
        let code_text = code.trim_end();
        assert!(code_text.len() < MAX_MESSAGE_CHARS);
        let shaped = markdown_to_text(&md);
        let pieces = shape_reply(&md);
        check_split(&shaped, &pieces, MAX_MESSAGE_CHARS);
        assert!(pieces.iter().any(|p| p.contains(code_text)), "{pieces:#?}");
        assert_eq!(pieces.len(), 3);
        let plain = split_message(&shaped, MAX_MESSAGE_CHARS);
        check_split(&shaped, &plain, MAX_MESSAGE_CHARS);
        assert_eq!(plain.len(), 2);
        assert!(!plain.iter().any(|p| p.contains(code_text)));
    }

    #[test]
    fn a_message_never_ends_on_a_heading() {
        let filler = "word ".repeat(380);
        let md = format!(
            "{}\n\n## Next part\n\n{}",
            filler.trim_end(),
            filler.trim_end()
        );
        let pieces = shape_reply(&md);
        assert_eq!(pieces.len(), 2);
        assert!(
            pieces[1].starts_with("Next part\nword"),
            "{:?}",
            &pieces[1][..20]
        );
    }

    #[test]
    fn counts_utf16_units() {
        let emoji = "😀".repeat(10); // 20 UTF-16 units, 10 chars
        let p = split_message(&emoji, 10);
        assert_eq!(p, vec!["😀".repeat(5), "😀".repeat(5)]);
        let p = split_message("é".repeat(20).as_str(), 10);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn never_splits_emoji_sequences() {
        let family = "👨\u{200D}👩\u{200D}👧\u{200D}👦"; // 11 UTF-16 units
        let thumbs = "👍🏽"; // 4 units
        let flag = "🇫🇷"; // 4 units
        let accent = "e\u{0301}"; // 2 units
        for unit in [family, thumbs, flag, accent] {
            let s = unit.repeat(9);
            for max in [12, 13, 17, 20, 23] {
                let p = split_message(&s, max);
                check_split(&s, &p, max);
                for piece in &p {
                    assert_eq!(
                        piece.len() % unit.len(),
                        0,
                        "{unit:?} split at {max}: {p:?}"
                    );
                }
            }
        }
        // Near a boundary in prose, with no space to cut at.
        let s = format!("{}{family}{}", "a".repeat(8), "b".repeat(8));
        let p = split_message(&s, 12);
        assert_eq!(p, vec!["a".repeat(8), format!("{family}b"), "b".repeat(7)]);
        assert!(p.iter().all(|x| !x.starts_with('\u{200D}')));
    }

    #[test]
    fn tiny_limits_still_make_progress() {
        let p = split_message("ab 😀 cd", 1);
        assert_eq!(p, vec!["a", "b", "😀", "c", "d"]);
        let p = split_message("abc", 0);
        assert_eq!(p, vec!["a", "b", "c"]);
    }

    #[test]
    fn split_keeps_code_indentation_across_pieces() {
        let s = "    one two three\n    four five six\n    seven eight";
        let p = split_message(s, 20);
        assert_eq!(
            p,
            vec!["    one two three", "    four five six", "    seven eight"]
        );
    }

    /// xorshift64*, enough for reproducible generated inputs.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    const FRAGMENTS: &[&str] = &[
        "word",
        "word",
        "word",
        "snake_case",
        "2*3*4",
        "**bold**",
        "*em*",
        "_u_",
        "~~s~~",
        " ",
        " ",
        " ",
        " ",
        ". ",
        "! ",
        "\n",
        "\n",
        "\n\n",
        "\n\n\n",
        "- ",
        "* ",
        "1. ",
        "# ",
        "> ",
        "`code`",
        "```\n",
        "| a | b |\n|---|---|\n| c | d |\n",
        "[l](https://x.y)",
        "![i](u)",
        "<br>",
        "<b>",
        "😀",
        "👨\u{200D}👩\u{200D}👧",
        "🇫🇷",
        "e\u{301}",
        "é",
        "\t",
        "    ",
        "\\",
        "<",
        ">",
        "&amp;",
        "~",
        "_",
        "*",
        "https://a.b/c_d",
        "\r\n",
        "\u{200D}",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    ];

    #[test]
    fn generated_inputs_keep_the_invariants() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..300 {
            let len = (rng.next() % 400) as usize;
            let input: String = (0..len).map(|_| rng.pick(FRAGMENTS)).collect();
            let max = [1, 2, 3, 7, 16, 40, 120, 500][round % 8];
            let plain = split_message(&input, max);
            check_split(&input, &plain, max.max(2));
            if max >= 2 {
                check_split(&input, &plain, max);
            }
            let rendered = render(&input);
            let shaped = rendered.text.clone();
            assert_eq!(shaped, markdown_to_text(&input));
            assert!(!shaped.starts_with('\n'), "{shaped:?}");
            assert!(shaped.lines().all(|l| l.trim_end() == l), "{shaped:?}");
            if rendered.code.is_empty() {
                assert!(!shaped.contains("\n\n\n"), "{input:?} -> {shaped:?}");
            }
            let pieces = split_text(&shaped, max, &[], &[]);
            check_split(&shaped, &pieces, max.max(2));
            let reply = shape_reply(&input);
            check_split(&shaped, &reply, MAX_MESSAGE_CHARS);
        }
    }

    #[test]
    fn generated_long_replies_respect_the_limit() {
        let mut rng = Rng(42);
        for _ in 0..20 {
            let len = 2000 + (rng.next() % 3000) as usize;
            let input: String = (0..len).map(|_| rng.pick(FRAGMENTS)).collect();
            let shaped = markdown_to_text(&input);
            let pieces = shape_reply(&input);
            check_split(&shaped, &pieces, MAX_MESSAGE_CHARS);
        }
    }

    #[test]
    fn large_input_is_fast_enough() {
        let para = "This sentence is one of many. ".repeat(40);
        let md = format!("{para}\n\n").repeat(100); // ~120 KB
        let started = std::time::Instant::now();
        let pieces = shape_reply(&md);
        check_split(&markdown_to_text(&md), &pieces, MAX_MESSAGE_CHARS);
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
