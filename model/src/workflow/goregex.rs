//! Go's regular-expression syntax, rewritten for the `regex` crate.
//!
//! Gitea turns a workflow glob into a Go regular expression and compiles it with Go's
//! `regexp.Compile` (RE2 syntax with Perl extensions). The `regex` crate reads a very similar
//! language, but not the same one: `\d`, `\w`, `\s` and `\b` are ASCII in Go and Unicode in
//! Rust; `[` inside a class is a literal in Go and a nested class in Rust; `&&`, `--` and `~~`
//! are class operators in Rust only; `\<` is a literal `<` in Go and a word boundary in Rust;
//! Rust accepts flags (`x`, `u`, `R`) and capture names that Go rejects, and Go accepts a few
//! things Rust rejects (`^*`, capture names starting with a digit, duplicate flags).
//!
//! [`translate`] therefore parses the Go syntax itself, rejects what Go rejects (with Go's
//! reasons), and writes a Rust pattern in which every literal is escaped and every class is
//! spelled out, so both engines accept the same strings.

use std::collections::HashSet;
use std::fmt::Write as _;

/// Go's limit on how deeply an expression may nest (`syntax.maxHeight`).
pub(crate) const MAX_NESTING: usize = 1000;

/// Why a Go regular expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoRegexError(pub(crate) String);

type Result<T> = std::result::Result<T, GoRegexError>;

fn err<T>(message: impl Into<String>) -> Result<T> {
    Err(GoRegexError(message.into()))
}

/// One parsed piece of a Go expression.
#[derive(Debug)]
enum Node {
    /// A literal code point (may be a surrogate, which matches nothing in UTF-8 text).
    Literal(u32),
    /// An already-written Rust atom: a class, `.`, an assertion.
    Atom(String),
    /// A group: its Rust opener (`(?:` or `(?flags:`) and its alternatives.
    Group {
        opener: String,
        alternatives: Vec<Vec<Node>>,
        height: usize,
    },
    /// A flag change for the rest of the enclosing group, e.g. `(?i)`. Not an atom.
    Flags(String),
    /// A repeated atom with its operator (`*`, `+?`, `{2,3}`…).
    Repeat {
        inner: Box<Node>,
        op: String,
        height: usize,
    },
}

impl Node {
    fn height(&self) -> usize {
        match self {
            Node::Literal(_) | Node::Atom(_) | Node::Flags(_) => 1,
            Node::Group { height, .. } | Node::Repeat { height, .. } => *height,
        }
    }
}

/// An open group while parsing.
struct Frame {
    opener: String,
    alternatives: Vec<Vec<Node>>,
    current: Vec<Node>,
}

impl Frame {
    fn new(opener: String) -> Self {
        Self {
            opener,
            alternatives: Vec::new(),
            current: Vec::new(),
        }
    }

    fn finish(mut self) -> Result<Node> {
        self.alternatives.push(self.current);
        let height = 1 + self
            .alternatives
            .iter()
            .flatten()
            .map(Node::height)
            .max()
            .unwrap_or(0);
        if height > MAX_NESTING {
            return err("expression nests too deeply");
        }
        Ok(Node::Group {
            opener: self.opener,
            alternatives: self.alternatives,
            height,
        })
    }
}

/// Translates a Go regular expression (as `regexp.Compile` reads it) into an equivalent
/// pattern for the `regex` crate.
///
/// # Errors
/// Where Go's parser would reject the expression, with Go's reason.
pub(crate) fn translate(go: &str) -> Result<String> {
    let chars: Vec<char> = go.chars().collect();
    let mut parser = Parser {
        chars: &chars,
        pos: 0,
        stack: vec![Frame::new(String::new())],
        names: HashSet::new(),
        last_was_repeat: false,
    };
    parser.parse()?;
    let top = parser
        .stack
        .pop()
        .ok_or_else(|| GoRegexError("internal: no top-level group".into()))?;
    if !parser.stack.is_empty() {
        return err("missing closing )");
    }
    let mut out = String::new();
    let node = top.finish()?;
    if let Node::Group { alternatives, .. } = &node {
        render_alternatives(alternatives, &mut out);
    }
    Ok(out)
}

struct Parser<'a> {
    chars: &'a [char],
    pos: usize,
    stack: Vec<Frame>,
    names: HashSet<String>,
    last_was_repeat: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn frame(&mut self) -> Result<&mut Frame> {
        self.stack
            .last_mut()
            .ok_or_else(|| GoRegexError("internal: empty group stack".into()))
    }

    fn push(&mut self, node: Node) -> Result<()> {
        self.frame()?.current.push(node);
        Ok(())
    }

    fn parse(&mut self) -> Result<()> {
        while let Some(c) = self.peek() {
            self.pos += 1;
            let mut repeated = false;
            match c {
                '(' => self.open_group()?,
                '|' => {
                    let frame = self.frame()?;
                    let done = std::mem::take(&mut frame.current);
                    frame.alternatives.push(done);
                }
                ')' => {
                    if self.stack.len() < 2 {
                        return err("unexpected )");
                    }
                    let frame = self
                        .stack
                        .pop()
                        .ok_or_else(|| GoRegexError("internal: empty group stack".into()))?;
                    let node = frame.finish()?;
                    self.push(node)?;
                }
                '*' | '+' | '?' => {
                    let mut op = c.to_string();
                    if self.peek() == Some('?') {
                        self.pos += 1;
                        op.push('?');
                    }
                    self.repeat(op)?;
                    repeated = true;
                }
                '{' => match self.counted_repeat()? {
                    Some(op) => {
                        self.repeat(op)?;
                        repeated = true;
                    }
                    None => self.push(Node::Literal(u32::from('{')))?,
                },
                '[' => {
                    let class = self.class()?;
                    self.push(Node::Atom(class))?;
                }
                '.' => self.push(Node::Atom(".".into()))?,
                '^' => self.push(Node::Atom("^".into()))?,
                '$' => self.push(Node::Atom("$".into()))?,
                '\\' => self.escape()?,
                other => self.push(Node::Literal(u32::from(other)))?,
            }
            self.last_was_repeat = repeated;
        }
        Ok(())
    }

    /// Applies a repetition operator to the last atom, as Go does.
    fn repeat(&mut self, mut op: String) -> Result<()> {
        if self.last_was_repeat {
            return err(format!("invalid nested repetition operator: `{op}`"));
        }
        // A non-greedy `{n,m}?` is read here for counted repeats.
        if op.starts_with('{') && self.peek() == Some('?') {
            self.pos += 1;
            op.push('?');
        }
        let frame = self.frame()?;
        // Flag groups push nothing in Go, so the operator applies to the atom before them.
        let Some(index) = frame
            .current
            .iter()
            .rposition(|n| !matches!(n, Node::Flags(_)))
        else {
            return err(format!("missing argument to repetition operator: `{op}`"));
        };
        let inner = frame.current.remove(index);
        let height = inner.height() + 1;
        if height > MAX_NESTING {
            return err("expression nests too deeply");
        }
        frame.current.insert(
            index,
            Node::Repeat {
                inner: Box::new(inner),
                op,
                height,
            },
        );
        Ok(())
    }

    /// `{n}`, `{n,}` or `{n,m}` after the `{`; `None` when the text is not a repeat (then `{`
    /// is a literal, as in Go).
    fn counted_repeat(&mut self) -> Result<Option<String>> {
        let start = self.pos;
        let read_number = |pos: &mut usize, chars: &[char]| -> Option<u64> {
            let begin = *pos;
            let mut value: u64 = 0;
            while let Some(d) = chars.get(*pos).and_then(|c| c.to_digit(10)) {
                value = value.saturating_mul(10).saturating_add(u64::from(d));
                *pos += 1;
            }
            (*pos > begin).then_some(value)
        };
        let mut pos = self.pos;
        let Some(min) = read_number(&mut pos, self.chars) else {
            return Ok(None);
        };
        let max = if self.chars.get(pos) == Some(&',') {
            pos += 1;
            if self.chars.get(pos) == Some(&'}') {
                None
            } else {
                match read_number(&mut pos, self.chars) {
                    Some(m) => Some(m),
                    None => return Ok(None),
                }
            }
        } else {
            Some(min)
        };
        let exact = self
            .chars
            .get(start..pos)
            .is_some_and(|s| !s.contains(&','));
        if self.chars.get(pos) != Some(&'}') {
            return Ok(None);
        }
        pos += 1;
        self.pos = pos;
        if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
            return err("invalid repeat count");
        }
        Ok(Some(match (exact, max) {
            (true, _) => format!("{{{min}}}"),
            (false, None) => format!("{{{min},}}"),
            (false, Some(m)) => format!("{{{min},{m}}}"),
        }))
    }

    fn open_group(&mut self) -> Result<()> {
        if self.peek() != Some('?') {
            self.stack.push(Frame::new("(?:".into()));
            return self.check_depth();
        }
        // Named capture: `(?P<name>` or `(?<name>`.
        let named_from = match (self.peek_at(1), self.peek_at(2)) {
            (Some('P'), Some('<')) => Some(3),
            (Some('<'), _) => Some(2),
            (Some('P'), Some('=')) => {
                return err("invalid named capture: backreferences are not supported")
            }
            _ => None,
        };
        if let Some(skip) = named_from {
            let begin = self.pos + skip;
            let Some(len) = self
                .chars
                .get(begin..)
                .and_then(|rest| rest.iter().position(|&c| c == '>'))
            else {
                return err("invalid named capture");
            };
            let name: String = self
                .chars
                .get(begin..begin + len)
                .unwrap_or_default()
                .iter()
                .collect();
            if name.is_empty() || !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
                return err(format!("invalid named capture: `{name}`"));
            }
            if !self.names.insert(name.clone()) {
                return err(format!("duplicate capture group name: `{name}`"));
            }
            self.pos = begin + len + 1;
            // Captures do not matter for matching; Go's names may not be valid Rust names.
            self.stack.push(Frame::new("(?:".into()));
            return self.check_depth();
        }
        // Flags: `(?flags)` or `(?flags:re)`, flags from `imsU`, one optional `-`.
        self.pos += 1;
        let mut on: Vec<char> = Vec::new();
        let mut off: Vec<char> = Vec::new();
        let mut negated = false;
        let mut saw_flag = false;
        loop {
            let Some(c) = self.peek() else {
                return err("invalid or unsupported Perl syntax: missing )");
            };
            self.pos += 1;
            match c {
                'i' | 'm' | 's' | 'U' => {
                    saw_flag = true;
                    if negated {
                        on.retain(|&f| f != c);
                        if !off.contains(&c) {
                            off.push(c);
                        }
                    } else if !on.contains(&c) {
                        on.push(c);
                    }
                }
                '-' => {
                    if negated {
                        return err("invalid or unsupported Perl syntax: `-` twice in flags");
                    }
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' => {
                    if negated && !saw_flag {
                        return err("invalid or unsupported Perl syntax: `-` without a flag");
                    }
                    let flags = render_flags(&on, &off);
                    if c == ':' {
                        let opener = if flags.is_empty() {
                            "(?:".to_string()
                        } else {
                            format!("(?{flags}:")
                        };
                        self.stack.push(Frame::new(opener));
                        return self.check_depth();
                    }
                    if !flags.is_empty() {
                        self.push(Node::Flags(format!("(?{flags})")))?;
                    }
                    return Ok(());
                }
                other => {
                    return err(format!(
                        "invalid or unsupported Perl syntax: flag `{other}`"
                    ));
                }
            }
        }
    }

    fn check_depth(&self) -> Result<()> {
        if self.stack.len() > MAX_NESTING {
            return err("expression nests too deeply");
        }
        Ok(())
    }

    /// After a `\` outside a class.
    fn escape(&mut self) -> Result<()> {
        let Some(c) = self.peek() else {
            return err("trailing backslash at end of expression");
        };
        match c {
            'A' => {
                self.pos += 1;
                self.push(Node::Atom(r"\A".into()))
            }
            'z' => {
                self.pos += 1;
                self.push(Node::Atom(r"\z".into()))
            }
            'b' => {
                self.pos += 1;
                self.push(Node::Atom(r"(?-u:\b)".into()))
            }
            'B' => {
                self.pos += 1;
                self.push(Node::Atom(r"(?-u:\B)".into()))
            }
            'C' => err(r"invalid escape sequence: `\C`"),
            'Q' => {
                self.pos += 1;
                while let Some(ch) = self.peek() {
                    if ch == '\\' && self.peek_at(1) == Some('E') {
                        self.pos += 2;
                        break;
                    }
                    self.pos += 1;
                    self.push(Node::Literal(u32::from(ch)))?;
                }
                Ok(())
            }
            'p' | 'P' => {
                let class = self.unicode_class()?;
                self.push(Node::Atom(format!("[{class}]")))
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.pos += 1;
                let (set, negated) = perl_class(c);
                self.push(Node::Atom(render_ascii_set(set, negated)))
            }
            _ => {
                let code = self.escaped_char()?;
                self.push(Node::Literal(code))
            }
        }
    }

    /// Reads the character escape after a `\` (Go's `parseEscape`); `self.pos` is on the
    /// character after the backslash.
    fn escaped_char(&mut self) -> Result<u32> {
        let Some(c) = self.peek() else {
            return err("trailing backslash at end of expression");
        };
        self.pos += 1;
        match c {
            '1'..='7' if !self.peek().is_some_and(|d| ('0'..='7').contains(&d)) => err(format!(
                "invalid escape sequence: `\\{c}` (backreferences are not supported)"
            )),
            '0'..='7' => {
                let mut value = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            self.pos += 1;
                        }
                        None => break,
                    }
                }
                Ok(value)
            }
            'x' => {
                if self.peek() == Some('{') {
                    self.pos += 1;
                    let mut value: u32 = 0;
                    let mut digits = 0;
                    loop {
                        match self.peek() {
                            Some('}') if digits > 0 => {
                                self.pos += 1;
                                return Ok(value);
                            }
                            Some(h) if h.is_ascii_hexdigit() => {
                                value = value
                                    .saturating_mul(16)
                                    .saturating_add(h.to_digit(16).unwrap_or(0));
                                if value > 0x10_FFFF {
                                    return err(
                                        r"invalid escape sequence: `\x{…}` beyond U+10FFFF",
                                    );
                                }
                                digits += 1;
                                self.pos += 1;
                            }
                            _ => return err(r"invalid escape sequence: bad `\x{…}`"),
                        }
                    }
                }
                let hi = self.peek().and_then(|h| h.to_digit(16));
                let lo = self.peek_at(1).and_then(|h| h.to_digit(16));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        self.pos += 2;
                        Ok(hi * 16 + lo)
                    }
                    _ => err(r"invalid escape sequence: `\x` needs two hex digits"),
                }
            }
            'a' => Ok(7),
            'f' => Ok(12),
            'n' => Ok(10),
            'r' => Ok(13),
            't' => Ok(9),
            'v' => Ok(11),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(u32::from(c)),
            c => err(format!("invalid escape sequence: `\\{c}`")),
        }
    }

    /// `\pL`, `\p{Greek}`, `\PL`, `\p{^Greek}`; `self.pos` is on the `p`/`P`. Returns the Rust
    /// class items (without brackets).
    fn unicode_class(&mut self) -> Result<String> {
        let negated_by_letter = self.peek() == Some('P');
        self.pos += 1;
        let name: String = match self.peek() {
            None => return err(r"invalid character class range: `\p` at end"),
            Some('{') => {
                self.pos += 1;
                let begin = self.pos;
                let Some(len) = self
                    .chars
                    .get(begin..)
                    .and_then(|rest| rest.iter().position(|&c| c == '}'))
                else {
                    return err(r"invalid character class range: missing } in `\p{`");
                };
                self.pos = begin + len + 1;
                self.chars
                    .get(begin..begin + len)
                    .unwrap_or_default()
                    .iter()
                    .collect()
            }
            Some(c) => {
                self.pos += 1;
                c.to_string()
            }
        };
        let (name, negated_by_caret) = match name.strip_prefix('^') {
            Some(rest) => (rest.to_string(), true),
            None => (name, false),
        };
        let negated = negated_by_letter != negated_by_caret;
        let body = unicode_class_body(&name).ok_or_else(|| {
            GoRegexError(format!("invalid character class range: `\\p{{{name}}}`"))
        })?;
        Ok(if negated { format!("[^{body}]") } else { body })
    }

    /// After a `[`: Go's `parseClass`. Returns the whole Rust class.
    fn class(&mut self) -> Result<String> {
        let mut items = String::new();
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return err("missing closing ]");
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            // POSIX class `[:alpha:]` / `[:^alpha:]`.
            if c == '[' && self.peek_at(1) == Some(':') {
                let rest = self.chars.get(self.pos + 2..).unwrap_or_default();
                if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                    let name: String = rest.get(..end).unwrap_or_default().iter().collect();
                    let (name, negated_posix) = match name.strip_prefix('^') {
                        Some(n) => (n.to_string(), true),
                        None => (name, false),
                    };
                    let set = posix_class(&name).ok_or_else(|| {
                        GoRegexError(format!("invalid character class range: `[:{name}:]`"))
                    })?;
                    items.push_str(&render_ascii_items(set, negated_posix));
                    self.pos += 2 + end + 2;
                    continue;
                }
            }
            if c == '\\' {
                match self.peek_at(1) {
                    Some('p' | 'P') => {
                        self.pos += 1;
                        items.push_str(&self.unicode_class()?);
                        continue;
                    }
                    Some(p @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                        self.pos += 2;
                        let (set, neg) = perl_class(p);
                        items.push_str(&render_ascii_items(set, neg));
                        continue;
                    }
                    _ => {}
                }
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|n| n != ']') {
                self.pos += 1;
                hi = self.class_char()?;
                if hi < lo {
                    return err("invalid character class range");
                }
            }
            push_range(&mut items, lo, hi);
        }
        Ok(if negated {
            format!("[^{items}]")
        } else {
            format!("[{items}]")
        })
    }

    fn class_char(&mut self) -> Result<u32> {
        let Some(c) = self.peek() else {
            return err("missing closing ]");
        };
        self.pos += 1;
        if c == '\\' {
            return self.escaped_char();
        }
        Ok(u32::from(c))
    }
}

/// Renders `(?imsU-imsU)` flag letters, without the parentheses.
fn render_flags(on: &[char], off: &[char]) -> String {
    let mut s: String = on.iter().collect();
    if !off.is_empty() {
        s.push('-');
        s.extend(off.iter());
    }
    s
}

fn render_alternatives(alternatives: &[Vec<Node>], out: &mut String) {
    for (i, alt) in alternatives.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for node in alt {
            render(node, out);
        }
    }
}

fn render(node: &Node, out: &mut String) {
    match node {
        Node::Literal(code) => match char::from_u32(*code) {
            Some(c) => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            // A surrogate never occurs in UTF-8 text.
            None => out.push_str(NOTHING),
        },
        Node::Atom(text) | Node::Flags(text) => out.push_str(text),
        Node::Group {
            opener,
            alternatives,
            ..
        } => {
            out.push_str(opener);
            render_alternatives(alternatives, out);
            out.push(')');
        }
        Node::Repeat { inner, op, .. } => {
            out.push_str("(?:");
            render(inner, out);
            out.push(')');
            out.push_str(op);
        }
    }
}

/// A class that matches nothing.
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";

/// Appends `lo-hi` to class items, leaving out surrogates (which Rust cannot name and which
/// never occur in UTF-8 text).
fn push_range(items: &mut String, lo: u32, hi: u32) {
    let mut parts: Vec<(u32, u32)> = Vec::new();
    if lo < 0xD800 {
        parts.push((lo, hi.min(0xD7FF)));
    }
    if hi > 0xDFFF {
        parts.push((lo.max(0xE000), hi));
    }
    if parts.is_empty() {
        // Only surrogates: contributes nothing, but the class must stay well-formed.
        items.push_str(NOTHING);
        return;
    }
    for (a, b) in parts {
        if a == b {
            let _ = write!(items, r"\x{{{a:X}}}");
        } else {
            let _ = write!(items, r"\x{{{a:X}}}-\x{{{b:X}}}");
        }
    }
}

type AsciiSet = &'static [(u8, u8)];

fn perl_class(c: char) -> (AsciiSet, bool) {
    const DIGIT: AsciiSet = &[(b'0', b'9')];
    const SPACE: AsciiSet = &[(b'\t', b'\n'), (0x0C, b'\r'), (b' ', b' ')];
    const WORD: AsciiSet = &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')];
    match c {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        's' => (SPACE, false),
        'S' => (SPACE, true),
        'w' => (WORD, false),
        _ => (WORD, true),
    }
}

fn posix_class(name: &str) -> Option<AsciiSet> {
    Some(match name {
        "alnum" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
        "alpha" => &[(b'A', b'Z'), (b'a', b'z')],
        "ascii" => &[(0, 0x7F)],
        "blank" => &[(b'\t', b'\t'), (b' ', b' ')],
        "cntrl" => &[(0, 0x1F), (0x7F, 0x7F)],
        "digit" => &[(b'0', b'9')],
        "graph" => &[(b'!', b'~')],
        "lower" => &[(b'a', b'z')],
        "print" => &[(b' ', b'~')],
        "punct" => &[(b'!', b'/'), (b':', b'@'), (b'[', b'`'), (b'{', b'~')],
        "space" => &[(b'\t', b'\r'), (b' ', b' ')],
        "upper" => &[(b'A', b'Z')],
        "word" => &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')],
        "xdigit" => &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
        _ => return None,
    })
}

/// Class items for an ASCII set; a negated set becomes a nested negated class.
fn render_ascii_items(set: AsciiSet, negated: bool) -> String {
    let mut inner = String::new();
    for &(a, b) in set {
        push_range(&mut inner, u32::from(a), u32::from(b));
    }
    if negated {
        format!("[^{inner}]")
    } else {
        inner
    }
}

fn render_ascii_set(set: AsciiSet, negated: bool) -> String {
    let items = render_ascii_items(set, false);
    if negated {
        format!("[^{items}]")
    } else {
        format!("[{items}]")
    }
}

/// The Rust class items for one of Go's Unicode class names, or `None` when Go does not know
/// the name. Go knows `Any`, the general categories and the scripts, spelled exactly.
fn unicode_class_body(name: &str) -> Option<String> {
    if name == "Any" {
        return Some(r"\x{0}-\x{10FFFF}".into());
    }
    // Go's `C` is Cc|Cf|Co|Cs; Rust's also holds unassigned code points.
    if name == "C" {
        return Some(r"\p{Cc}\p{Cf}\p{Co}".into());
    }
    if name == "Cs" {
        return Some(NOTHING.into());
    }
    if GENERAL_CATEGORIES.contains(&name) || SCRIPTS.contains(&name) {
        return Some(format!(r"\p{{{name}}}"));
    }
    None
}

const GENERAL_CATEGORIES: &[&str] = &[
    "Cc", "Cf", "Co", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me", "Mn", "N", "Nd", "Nl",
    "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc", "Sk", "Sm", "So", "Z", "Zl",
    "Zp", "Zs",
];

/// Unicode script names as Go's `unicode.Scripts` spells them.
const SCRIPTS: &[&str] = &[
    "Adlam",
    "Ahom",
    "Anatolian_Hieroglyphs",
    "Arabic",
    "Armenian",
    "Avestan",
    "Balinese",
    "Bamum",
    "Bassa_Vah",
    "Batak",
    "Bengali",
    "Bhaiksuki",
    "Bopomofo",
    "Brahmi",
    "Braille",
    "Buginese",
    "Buhid",
    "Canadian_Aboriginal",
    "Carian",
    "Caucasian_Albanian",
    "Chakma",
    "Cham",
    "Cherokee",
    "Chorasmian",
    "Common",
    "Coptic",
    "Cuneiform",
    "Cypriot",
    "Cypro_Minoan",
    "Cyrillic",
    "Deseret",
    "Devanagari",
    "Dives_Akuru",
    "Dogra",
    "Duployan",
    "Egyptian_Hieroglyphs",
    "Elbasan",
    "Elymaic",
    "Ethiopic",
    "Georgian",
    "Glagolitic",
    "Gothic",
    "Grantha",
    "Greek",
    "Gujarati",
    "Gunjala_Gondi",
    "Gurmukhi",
    "Han",
    "Hangul",
    "Hanifi_Rohingya",
    "Hanunoo",
    "Hatran",
    "Hebrew",
    "Hiragana",
    "Imperial_Aramaic",
    "Inherited",
    "Inscriptional_Pahlavi",
    "Inscriptional_Parthian",
    "Javanese",
    "Kaithi",
    "Kannada",
    "Katakana",
    "Kawi",
    "Kayah_Li",
    "Kharoshthi",
    "Khitan_Small_Script",
    "Khmer",
    "Khojki",
    "Khudawadi",
    "Lao",
    "Latin",
    "Lepcha",
    "Limbu",
    "Linear_A",
    "Linear_B",
    "Lisu",
    "Lycian",
    "Lydian",
    "Mahajani",
    "Makasar",
    "Malayalam",
    "Mandaic",
    "Manichaean",
    "Marchen",
    "Masaram_Gondi",
    "Medefaidrin",
    "Meetei_Mayek",
    "Mende_Kikakui",
    "Meroitic_Cursive",
    "Meroitic_Hieroglyphs",
    "Miao",
    "Modi",
    "Mongolian",
    "Mro",
    "Multani",
    "Myanmar",
    "Nabataean",
    "Nag_Mundari",
    "Nandinagari",
    "New_Tai_Lue",
    "Newa",
    "Nko",
    "Nushu",
    "Nyiakeng_Puachue_Hmong",
    "Ogham",
    "Ol_Chiki",
    "Old_Hungarian",
    "Old_Italic",
    "Old_North_Arabian",
    "Old_Permic",
    "Old_Persian",
    "Old_Sogdian",
    "Old_South_Arabian",
    "Old_Turkic",
    "Old_Uyghur",
    "Oriya",
    "Osage",
    "Osmanya",
    "Pahawh_Hmong",
    "Palmyrene",
    "Pau_Cin_Hau",
    "Phags_Pa",
    "Phoenician",
    "Psalter_Pahlavi",
    "Rejang",
    "Runic",
    "Samaritan",
    "Saurashtra",
    "Sharada",
    "Shavian",
    "Siddham",
    "SignWriting",
    "Sinhala",
    "Sogdian",
    "Sora_Sompeng",
    "Soyombo",
    "Sundanese",
    "Syloti_Nagri",
    "Syriac",
    "Tagalog",
    "Tagbanwa",
    "Tai_Le",
    "Tai_Tham",
    "Tai_Viet",
    "Takri",
    "Tamil",
    "Tangsa",
    "Tangut",
    "Telugu",
    "Thaana",
    "Thai",
    "Tibetan",
    "Tifinagh",
    "Tirhuta",
    "Toto",
    "Ugaritic",
    "Vai",
    "Vithkuqi",
    "Wancho",
    "Warang_Citi",
    "Yezidi",
    "Yi",
    "Zanabazar_Square",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(go: &str, text: &str) -> bool {
        let rust = translate(go).expect("translates");
        regex::Regex::new(&rust).expect("compiles").is_match(text)
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        assert!(matches(r"^\d$", "7"));
        assert!(
            !matches(r"^\d$", "٣"),
            "Arabic-Indic digit is not \\d in Go"
        );
        assert!(!matches(r"^\w$", "é"));
        assert!(matches(r"^\W$", "é"));
        assert!(matches(r"^[\d_]+$", "1_2"));
    }

    #[test]
    fn bracket_inside_a_class_is_a_literal() {
        assert!(matches(r"^[a[]$", "["));
        assert!(matches(r"^[a&&b]$", "&"));
        assert!(matches(r"^[~~]$", "~"));
        assert!(matches(r"^[--a]$", "-"), "a range from - to a");
        assert!(
            translate(r"[a--b]").is_err(),
            "Go reads a range from a down to -"
        );
    }

    #[test]
    fn punctuation_escapes_are_literals() {
        assert!(matches(r"^\<\!\>$", "<!>"));
        assert!(matches(r"^a\ b$", "a b"));
    }

    #[test]
    fn repetition_rules_follow_go() {
        assert_eq!(
            translate("a**"),
            Err(GoRegexError(
                "invalid nested repetition operator: `*`".into()
            ))
        );
        assert!(translate("a*?").is_ok());
        assert!(translate("a*??").is_err());
        assert!(translate("*a").is_err());
        assert!(translate("(*a)").is_err());
        assert!(translate("a|*").is_err());
        // Go accepts a repeated assertion; it matches like an optional empty string.
        assert!(matches("^+abc$", "abc"));
        assert!(!matches("^+abc$", "+abc"));
    }

    #[test]
    fn groups_and_flags_follow_go() {
        assert!(matches("^(?i)main$", "MAIN"));
        assert!(translate("(?x)a").is_err(), "Go has no x flag");
        assert!(translate("(?P<1>a)").is_ok(), "Go allows digit-first names");
        assert!(translate("(?P<n>a)(?P<n>b)").is_err());
        assert!(translate("(a").is_err());
        assert!(translate("a)").is_err());
        assert!(matches("^(a|)$", ""));
    }

    #[test]
    fn escapes_follow_go() {
        assert!(matches(r"^\x41\x{42}\101$", "ABA"));
        assert!(translate(r"\1").is_err());
        assert!(translate(r"\e").is_err());
        assert!(translate("\\").is_err());
        assert!(matches(r"^\Qa.b\E$", "a.b"));
        assert!(!matches(r"^\Qa.b\E$", "axb"));
    }

    #[test]
    fn classes_follow_go() {
        assert!(translate("[]").is_err());
        assert!(matches("^[]a]$", "]"));
        assert!(matches("^[[:alpha:]]$", "x"));
        assert!(translate("[[:nope:]]").is_err());
        assert!(translate("[z-a]").is_err());
        assert!(matches(r"^[\p{Greek}]$", "λ"));
        assert!(translate(r"\p{Emoji}").is_err(), "not a Go class name");
        assert!(matches("^[a-]$", "-"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "(".repeat(MAX_NESTING + 5) + &")".repeat(MAX_NESTING + 5);
        assert!(translate(&deep).is_err());
        let stars = "a".to_string() + &"(?i)*".repeat(MAX_NESTING + 5);
        assert!(translate(&stars).is_err());
    }

    #[test]
    fn every_go_class_name_compiles_in_rust() {
        let extra = ["Any", "C", "Cs"];
        for name in GENERAL_CATEGORIES.iter().chain(SCRIPTS).chain(&extra) {
            let rust =
                translate(&format!(r"\p{{{name}}}[\P{{{name}}}x]")).expect("a Go class name");
            assert!(regex::Regex::new(&rust).is_ok(), "{name}: {rust}");
        }
    }
}
