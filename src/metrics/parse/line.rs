//! One line of exposition text: a metadata comment or a sample, read by hand over byte
//! offsets (every delimiter is ASCII, so slicing there keeps UTF-8 whole), copying only what
//! a [`Sample`] keeps and unescaping only strings that hold a backslash.

use std::borrow::Cow;

use super::{Format, Kind, Reason, Sample};

/// What a line says.
#[derive(Debug)]
pub(super) enum Line<'a> {
    /// A blank line or a plain comment (0.0.4).
    Skip,
    /// `# EOF` (OpenMetrics).
    Eof,
    /// `# HELP name text`, the text unescaped.
    Help(Cow<'a, str>, Cow<'a, str>),
    /// `# TYPE name type`.
    Type(Cow<'a, str>, Kind),
    /// `# UNIT name unit` (OpenMetrics).
    Unit(Cow<'a, str>, &'a str),
    /// A sample.
    Sample(Sample),
}

/// Reads one line (without its line break) in `format`.
pub(super) fn read(line: &str, format: Format) -> Result<Line<'_>, Reason> {
    match format {
        Format::Text004 => read_text004(line),
        Format::OpenMetrics => read_openmetrics(line),
    }
}

/// Reads a 0.0.4 line: whitespace anywhere between tokens, any comment.
fn read_text004(line: &str) -> Result<Line<'_>, Reason> {
    let trimmed = line.trim_start_matches(is_blank_char);
    if trimmed.is_empty() {
        return Ok(Line::Skip);
    }
    match trimmed.strip_prefix('#') {
        Some(comment) => metadata_text004(comment),
        None => sample(&mut Cursor::new(trimmed), Spacing::Loose).map(Line::Sample),
    }
}

/// Reads an OpenMetrics line: single spaces, only HELP, TYPE, UNIT and EOF comments.
fn read_openmetrics(line: &str) -> Result<Line<'_>, Reason> {
    if line.is_empty() {
        return Err(Reason::BlankLine);
    }
    match line.strip_prefix('#') {
        Some(comment) => metadata_openmetrics(comment),
        None => sample(&mut Cursor::new(line), Spacing::Strict).map(Line::Sample),
    }
}

/// Which metadata an OpenMetrics comment carries.
#[derive(Clone, Copy)]
enum Keyword {
    Help,
    Type,
    Unit,
}

/// Reads what follows a 0.0.4 `#`: `HELP` or `TYPE` between runs of whitespace make
/// metadata, anything else is a comment.
fn metadata_text004(comment: &str) -> Result<Line<'_>, Reason> {
    let mut cur = Cursor::new(comment);
    if !cur.skip_blanks() {
        return Ok(Line::Skip);
    }
    let is_help = if cur.eat_str("HELP") {
        true
    } else if cur.eat_str("TYPE") {
        false
    } else {
        return Ok(Line::Skip);
    };
    if !cur.skip_blanks() {
        return Ok(Line::Skip);
    }
    let name = cur.name_token(NameKind::Metric)?;
    let name = name.ok_or(Reason::ExpectedMetricName)?.text();
    // One blank separates the name from the text, which keeps any further ones.
    let text = match cur.peek() {
        None => "",
        Some(b) if is_blank(b) => &cur.rest()[1..],
        Some(_) => return Err(Reason::ExpectedSpace),
    };
    if is_help {
        return Ok(Line::Help(name, unescape(text, Quotes::Kept)));
    }
    Kind::from_word(text.trim_end_matches(is_blank_char), Format::Text004)
        .map(|kind| Line::Type(name, kind))
        .ok_or(Reason::InvalidType)
}

/// Reads what follows an OpenMetrics `#`: ` HELP `, ` TYPE `, ` UNIT ` or ` EOF`.
fn metadata_openmetrics(comment: &str) -> Result<Line<'_>, Reason> {
    if comment == " EOF" {
        return Ok(Line::Eof);
    }
    let (keyword, rest) = if let Some(rest) = comment.strip_prefix(" HELP ") {
        (Keyword::Help, rest)
    } else if let Some(rest) = comment.strip_prefix(" TYPE ") {
        (Keyword::Type, rest)
    } else if let Some(rest) = comment.strip_prefix(" UNIT ") {
        (Keyword::Unit, rest)
    } else {
        return Err(Reason::UnexpectedComment);
    };
    let mut cur = Cursor::new(rest);
    let name = cur.name_token(NameKind::Metric)?;
    let name = name.ok_or(Reason::ExpectedMetricName)?.text();
    let text = if cur.at_end() {
        ""
    } else if cur.eat(b' ') {
        cur.rest()
    } else {
        return Err(Reason::ExpectedSpace);
    };
    match keyword {
        Keyword::Help => Ok(Line::Help(name, unescape(text, Quotes::Escaped))),
        Keyword::Type => Kind::from_word(text, Format::OpenMetrics)
            .map(|kind| Line::Type(name, kind))
            .ok_or(Reason::InvalidType),
        Keyword::Unit => {
            let fits = text.is_empty()
                || name
                    .strip_suffix(text)
                    .is_some_and(|base| base.ends_with('_'));
            if fits {
                Ok(Line::Unit(name, text))
            } else {
                Err(Reason::UnitNotSuffix)
            }
        }
    }
}

/// How tokens are separated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spacing {
    /// 0.0.4: optional runs of spaces and tabs around every token.
    Loose,
    /// OpenMetrics: exactly one space between name, value and timestamp, none in braces.
    Strict,
}

/// Reads `name{labels} value [timestamp]`, and in OpenMetrics an exemplar after it.
fn sample(cur: &mut Cursor<'_>, spacing: Spacing) -> Result<Sample, Reason> {
    let plain = cur.take_while(is_metric_char);
    let starts_badly = plain.starts_with(|c: char| c.is_ascii_digit());
    if starts_badly || (plain.is_empty() && cur.peek() != Some(b'{')) {
        return Err(Reason::ExpectedLineStart);
    }
    let mut name_opt = (!plain.is_empty()).then_some(Cow::Borrowed(plain));
    let mut labels = Vec::new();
    if spacing == Spacing::Loose {
        cur.skip_blanks();
    }
    if cur.eat(b'{') {
        read_labels(cur, spacing, &mut labels, Some(&mut name_opt))?;
    }
    let name = name_opt.ok_or(Reason::MissingMetricName)?.into_owned();
    let (value, timestamp_ms) = match spacing {
        Spacing::Loose => value_and_timestamp_text004(cur)?,
        Spacing::Strict => value_and_timestamp_openmetrics(cur)?,
    };
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Reads the labels after `{` through `}` into `out`. A quoted string followed by `,` or `}`
/// is the metric name, stored in `name_slot` (an error where none is expected: exemplars).
fn read_labels<'a>(
    cur: &mut Cursor<'a>,
    spacing: Spacing,
    out: &mut Vec<(String, String)>,
    mut name_slot: Option<&mut Option<Cow<'a, str>>>,
) -> Result<(), Reason> {
    let loose = spacing == Spacing::Loose;
    loop {
        if loose {
            cur.skip_blanks();
        }
        if cur.at_end() {
            return Err(Reason::UnclosedBrace);
        }
        if cur.eat(b'}') {
            return Ok(());
        }
        let key = cur
            .name_token(NameKind::Label)?
            .ok_or(Reason::ExpectedLabelName)?;
        if loose {
            cur.skip_blanks();
        }
        if key.quoted && matches!(cur.peek(), Some(b',' | b'}')) {
            let slot = name_slot.as_deref_mut().ok_or(Reason::ExpectedLabelName)?;
            if slot.is_some() {
                return Err(Reason::MetricNameTwice);
            }
            *slot = Some(key.text());
            cur.eat(b',');
            continue;
        }
        if !cur.eat(b'=') {
            return Err(Reason::ExpectedEquals);
        }
        if loose {
            cur.skip_blanks();
        }
        let value = cur.quoted()?.ok_or(Reason::ExpectedLabelValue)?;
        out.push((
            key.text().into_owned(),
            unescape(value, Quotes::Escaped).into_owned(),
        ));
        if loose {
            cur.skip_blanks();
        }
        let comma = cur.eat(b',');
        if !comma && !loose && cur.peek() != Some(b'}') {
            return Err(Reason::ExpectedCommaOrBrace);
        }
    }
}

/// Reads a 0.0.4 value and optional integer-millisecond timestamp, blanks around them.
fn value_and_timestamp_text004(cur: &mut Cursor<'_>) -> Result<(f64, Option<i64>), Reason> {
    cur.skip_blanks();
    let value_token = cur.take_while(|b| !is_blank(b));
    if value_token.is_empty() {
        return Err(Reason::ExpectedValue);
    }
    let value = parse_float(value_token).ok_or(Reason::InvalidValue)?;
    cur.skip_blanks();
    if cur.at_end() {
        return Ok((value, None));
    }
    let timestamp_token = cur.take_while(|b| !is_blank(b));
    let timestamp = timestamp_token
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| timestamp_token.parse::<i64>().ok())
        .flatten()
        .ok_or(Reason::InvalidTimestamp)?;
    cur.skip_blanks();
    if !cur.at_end() {
        return Err(Reason::TrailingText);
    }
    Ok((value, Some(timestamp)))
}

/// Reads an OpenMetrics ` value [timestamp] [# {exemplar} value [timestamp]]`.
fn value_and_timestamp_openmetrics(cur: &mut Cursor<'_>) -> Result<(f64, Option<i64>), Reason> {
    if !cur.eat(b' ') {
        return Err(if cur.at_end() {
            Reason::ExpectedValue
        } else {
            Reason::ExpectedSpace
        });
    }
    let value_token = cur.take_while(|b| b != b' ');
    if value_token.is_empty() {
        return Err(Reason::ExpectedValue);
    }
    let value = parse_float(value_token).ok_or(Reason::InvalidValue)?;
    if cur.at_end() {
        return Ok((value, None));
    }
    if cur.eat_str(" # {") {
        skip_exemplar(cur).map_err(|_| Reason::InvalidExemplar)?;
        return Ok((value, None));
    }
    cur.eat(b' ');
    let timestamp_token = cur.take_while(|b| b != b' ');
    let timestamp = parse_seconds(timestamp_token).ok_or(Reason::InvalidTimestamp)?;
    if cur.at_end() {
        return Ok((value, Some(timestamp)));
    }
    if cur.eat_str(" # {") {
        skip_exemplar(cur).map_err(|_| Reason::InvalidExemplar)?;
        return Ok((value, Some(timestamp)));
    }
    Err(Reason::TrailingText)
}

/// Checks an exemplar after its `{` (labels, a value, an optional timestamp) and drops it.
fn skip_exemplar(cur: &mut Cursor<'_>) -> Result<(), Reason> {
    let mut labels = Vec::new();
    read_labels(cur, Spacing::Strict, &mut labels, None)?;
    if !cur.eat(b' ') {
        return Err(Reason::ExpectedSpace);
    }
    parse_float(cur.take_while(|b| b != b' ')).ok_or(Reason::InvalidValue)?;
    if cur.eat(b' ') {
        parse_seconds(cur.take_while(|b| b != b' ')).ok_or(Reason::InvalidTimestamp)?;
    }
    if cur.at_end() {
        Ok(())
    } else {
        Err(Reason::TrailingText)
    }
}

/// Parses a sample value as Go's `strconv.ParseFloat` does, less the forms Prometheus
/// refuses (`p`, `P`, `_`: hex floats and digit separators); see the module docs.
fn parse_float(token: &str) -> Option<f64> {
    if token.bytes().any(|b| matches!(b, b'p' | b'P' | b'_')) {
        return None;
    }
    let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
    if unsigned.eq_ignore_ascii_case("nan") {
        // Go takes no sign before NaN.
        return (unsigned.len() == token.len()).then_some(f64::NAN);
    }
    let infinity_word =
        unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity");
    let value = token.parse::<f64>().ok()?;
    // A number too large for f64 is Go's range error, not infinity.
    (infinity_word || value.is_finite()).then_some(value)
}

/// Parses an OpenMetrics timestamp (float seconds) into the nearest millisecond.
fn parse_seconds(token: &str) -> Option<i64> {
    let seconds = parse_float(token).filter(|s| s.is_finite())?;
    // `as` saturates at the i64 range, which only absurd timestamps reach.
    Some((seconds * 1000.0).round() as i64)
}

/// Which backslash escapes a string knows besides `\\` and `\n`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quotes {
    /// `\"` too: label values, quoted names, OpenMetrics HELP.
    Escaped,
    /// Not `\"`, which stays as written: 0.0.4 HELP.
    Kept,
}

/// Undoes the escapes in `raw`; an unknown escape stays as written, as Prometheus leaves it.
fn unescape(raw: &str, quotes: Quotes) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let mut after = rest[at + 1..].chars();
        match after.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if quotes == Quotes::Escaped => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
        rest = after.as_str();
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Which characters a bare name may have.
#[derive(Clone, Copy)]
enum NameKind {
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    Metric,
    /// `[a-zA-Z_][a-zA-Z0-9_]*`.
    Label,
}

/// A name as written: bare, or quoted (and still escaped).
struct NameToken<'a> {
    raw: &'a str,
    quoted: bool,
}

impl<'a> NameToken<'a> {
    /// Returns the name itself.
    fn text(&self) -> Cow<'a, str> {
        if self.quoted {
            unescape(self.raw, Quotes::Escaped)
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

/// A position in one line.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// Steps over `byte` (ASCII) when it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    /// Steps over `s` when it comes next.
    fn eat_str(&mut self, s: &str) -> bool {
        let found = self.rest().starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }

    /// Steps over spaces and tabs; tells whether there were any.
    fn skip_blanks(&mut self) -> bool {
        let start = self.pos;
        self.take_while(is_blank);
        self.pos > start
    }

    /// Takes the longest run of ASCII bytes matching `keep` (a non-ASCII byte never ends a
    /// run that `keep` accepts it in, so the cut is always on a character boundary).
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let len = self.text.as_bytes()[start..]
            .iter()
            .take_while(|b| keep(**b))
            .count();
        self.pos += len;
        &self.text[start..self.pos]
    }

    /// Takes a bare or quoted name; `None` when neither comes next.
    fn name_token(&mut self, kind: NameKind) -> Result<Option<NameToken<'a>>, Reason> {
        if let Some(raw) = self.quoted()? {
            return Ok(Some(NameToken { raw, quoted: true }));
        }
        let first_ok = |b: u8| match kind {
            NameKind::Metric => is_metric_char(b) && !b.is_ascii_digit(),
            NameKind::Label => is_label_char(b) && !b.is_ascii_digit(),
        };
        if !self.peek().is_some_and(first_ok) {
            return Ok(None);
        }
        let raw = match kind {
            NameKind::Metric => self.take_while(is_metric_char),
            NameKind::Label => self.take_while(is_label_char),
        };
        Ok(Some(NameToken { raw, quoted: false }))
    }

    /// Takes a double-quoted string and returns what is between the quotes, escapes intact;
    /// `None` when no quote comes next.
    fn quoted(&mut self) -> Result<Option<&'a str>, Reason> {
        if self.peek() != Some(b'"') {
            return Ok(None);
        }
        let bytes = self.text.as_bytes();
        let start = self.pos + 1;
        let mut at = start;
        while let Some(&b) = bytes.get(at) {
            match b {
                b'"' => {
                    self.pos = at + 1;
                    return Ok(Some(&self.text[start..at]));
                }
                // Whatever follows a backslash is part of the string.
                b'\\' => at += 2,
                _ => at += 1,
            }
        }
        Err(Reason::UnterminatedQuote)
    }
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_blank_char(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_metric_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
