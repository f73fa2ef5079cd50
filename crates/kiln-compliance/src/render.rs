//! The control attestation as a report a person reads: [`html`] (one self-contained file:
//! inline CSS, no scripts, no external URLs) and [`pdf`] (A4, the standard-14 fonts, so no
//! font files).
//!
//! Both are deterministic: the same header and predicate give the same bytes (no clock, no
//! random ids; the PDF's file id is a hash of its own content and its info dictionary has no
//! dates). Control names and failure reasons are untrusted text: the HTML escapes them, the
//! PDF maps them to WinAnsi (characters outside it become a visible `?` or an ASCII stand-in,
//! never garbage). Nothing is cut off: long text wraps, long words break, and a control
//! longer than a page continues on the next one; every PDF page says "page N of M".

use std::fmt::Write as _;

use kiln_core::Digest;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::predicate::{ControlResult, ControlsPredicate, PREDICATE_TYPE, Verdict};

/// What the report says about the attestation besides its predicate.
#[derive(Debug, Clone, Copy)]
pub struct ReportHeader<'a> {
    /// The image, e.g. `hello:0.1.0`.
    pub subject: &'a str,
    /// The image manifest digest (`sha256:...`), the statement's subject.
    pub digest: &'a str,
    /// `key <keyid>` or `keyless <identity>`; `None` when unsigned.
    pub signer: Option<&'a str>,
    /// sha256 of the signed DSSE payload, for cross-checking.
    pub statement_sha256: Option<&'a str>,
}

fn title(header: &ReportHeader<'_>) -> String {
    format!("Control attestation \u{2014} {}", header.subject)
}

/// Whether the report says PASS: every control passed and the summary agrees.
fn overall_pass(pred: &ControlsPredicate) -> bool {
    pred.all_pass() && pred.summary.failed == 0
}

/// `sha256:` and the first 12 hex digits.
fn short(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

/// The pack's image digest when it is not the header's (a mismatch the reader must see).
fn digest_mismatch(header: &ReportHeader<'_>, pred: &ControlsPredicate) -> Option<String> {
    let pack = pred.pack.digest.to_string();
    (pack != header.digest).then_some(pack)
}

// ---------------------------------------------------------------------------------------
// HTML

/// Escapes text for HTML element content and quoted attribute values. C0 control
/// characters other than tab and newline (invalid in HTML) become U+FFFD.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
:root{color-scheme:light}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;\
line-height:1.4;color:#1a1a1a;background:#fff;margin:2em auto;max-width:60em;padding:0 1em;\
-webkit-print-color-adjust:exact;print-color-adjust:exact}
h1{font-size:1.5em;margin:0 0 .6em;overflow-wrap:anywhere}
code{font-family:ui-monospace,'SFMono-Regular',Menlo,Consolas,'Liberation Mono',monospace;\
font-size:.88em;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}
table.meta{margin-bottom:1em}
table.meta th{text-align:left;vertical-align:top;white-space:nowrap;padding:.15em 1em .15em 0;\
width:11em;font-weight:600}
table.meta td{padding:.15em 0;overflow-wrap:anywhere}
.summary{font-size:1.15em;font-weight:600;margin:1em 0}
.badge{display:inline-block;min-width:3.6em;text-align:center;padding:.1em .5em;\
border-radius:3px;color:#fff;font-weight:700;font-size:.85em;letter-spacing:.04em}
.badge.pass{background:#1f7a1f}
.badge.fail{background:#c62828}
.warn{color:#b00020;font-weight:600}
table.controls th{background:#e8e8e8;text-align:left;padding:.4em .5em;border-bottom:1px solid #bbb}
table.controls td{vertical-align:top;padding:.45em .5em;border-bottom:1px solid #ddd}
table.controls td.id{width:11em;font-weight:600;overflow-wrap:anywhere}
table.controls td.result{width:5em}
table.controls tr.fail td{background:#fdeeee}
.name{font-weight:600;overflow-wrap:anywhere}
ul{margin:.25em 0;padding-left:1.3em}
ul.failures{color:#8b0000}
ul.failures li{white-space:pre-wrap;overflow-wrap:anywhere}
.evidence{color:#444;font-size:.9em}
ul.evidence{list-style:none;padding-left:.5em}
ul.evidence li{overflow-wrap:anywhere}
.muted{color:#666}
@media print{body{margin:0;max-width:none;font-size:11px}thead{display:table-header-group}\
tr{break-inside:avoid}}
";

/// The report as one self-contained HTML document.
pub fn html(header: &ReportHeader<'_>, pred: &ControlsPredicate) -> String {
    let mut h = String::new();
    let t = esc(&title(header));
    let pass = overall_pass(pred);
    // Writing to a String cannot fail.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{t}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n\
         <table class=\"meta\">\n"
    );
    let mut meta = |label: &str, value: String| {
        let _ = writeln!(h, "<tr><th>{label}</th><td>{value}</td></tr>");
    };
    meta("Subject", esc(header.subject));
    meta(
        "Image digest",
        format!("<code>{}</code>", esc(header.digest)),
    );
    let mut pack = esc(&pred.pack.image);
    if let Some(d) = digest_mismatch(header, pred) {
        let _ = write!(
            pack,
            " <span class=\"warn\">pack digest <code>{}</code> differs from the image digest</span>",
            esc(&d)
        );
    }
    meta("Pack", pack);
    meta(
        "Pack manifest sha256",
        format!("<code>{}</code>", pred.pack.manifest_sha256),
    );
    meta(
        "Catalog",
        format!(
            "{} <code>{}</code>",
            esc(&pred.catalog.path),
            pred.catalog.sha256
        ),
    );
    meta(
        "Signer",
        match header.signer {
            Some(s) => esc(s),
            None => "<span class=\"warn\">unsigned</span>".into(),
        },
    );
    meta(
        "Statement sha256",
        match header.statement_sha256 {
            Some(s) => format!("<code>{}</code>", esc(s)),
            None => "<span class=\"muted\">not given</span>".into(),
        },
    );
    meta("Predicate type", format!("<code>{PREDICATE_TYPE}</code>"));
    let s = pred.summary;
    let _ = write!(
        h,
        "</table>\n<p class=\"summary\">{} {} controls: {} passed, {} failed</p>\n\
         <table class=\"controls\">\n<thead><tr><th>ID</th><th>Control</th><th>Result</th></tr></thead>\n<tbody>\n",
        badge(pass),
        s.total,
        s.passed,
        s.failed
    );
    for c in &pred.controls {
        html_row(&mut h, c);
    }
    h.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    h
}

fn badge(pass: bool) -> &'static str {
    if pass {
        "<span class=\"badge pass\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

fn html_row(h: &mut String, c: &ControlResult) {
    let pass = c.result == Verdict::Pass;
    let _ = write!(
        h,
        "<tr class=\"{}\"><td class=\"id\">{}</td><td><div class=\"name\">{}</div>",
        if pass { "pass" } else { "fail" },
        esc(&c.id),
        esc(&c.name)
    );
    if !c.failures.is_empty() {
        h.push_str("<ul class=\"failures\">");
        for f in &c.failures {
            let _ = write!(h, "<li>{}</li>", esc(f));
        }
        h.push_str("</ul>");
    }
    if c.evidence.is_empty() {
        h.push_str("<div class=\"evidence muted\">Evidence: none</div>");
    } else {
        let _ = write!(
            h,
            "<div class=\"evidence\">Evidence ({} file{}):</div><ul class=\"evidence\">",
            c.evidence.len(),
            if c.evidence.len() == 1 { "" } else { "s" }
        );
        for e in &c.evidence {
            let _ = write!(
                h,
                "<li><code title=\"{}\">{}</code> <code>{}</code></li>",
                e.sha256,
                short(&e.sha256),
                esc(&e.path)
            );
        }
        h.push_str("</ul>");
    }
    let _ = writeln!(h, "</td><td class=\"result\">{}</td></tr>", badge(pass));
}

// ---------------------------------------------------------------------------------------
// PDF

/// Helvetica's advance widths (1/1000 em) for WinAnsi codes 32..=255 (Adobe's AFM).
#[rustfmt::skip]
const HELVETICA: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 333, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 333, 0,
    556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667,
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 333, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 578, 537, 278, 333, 333, 365, 333, 834, 834, 834, 611,
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

/// Helvetica-Bold's, likewise.
#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 333, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 333, 0,
    556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0,
    0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667,
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 333, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 333, 834, 834, 834, 611,
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

/// The characters of Windows-1252's 0x80..=0x9F range that WinAnsiEncoding has.
const CP1252_EXTRA: [(char, u8); 27] = [
    ('\u{20ac}', 0x80),
    ('\u{201a}', 0x82),
    ('\u{0192}', 0x83),
    ('\u{201e}', 0x84),
    ('\u{2026}', 0x85),
    ('\u{2020}', 0x86),
    ('\u{2021}', 0x87),
    ('\u{02c6}', 0x88),
    ('\u{2030}', 0x89),
    ('\u{0160}', 0x8a),
    ('\u{2039}', 0x8b),
    ('\u{0152}', 0x8c),
    ('\u{017d}', 0x8e),
    ('\u{2018}', 0x91),
    ('\u{2019}', 0x92),
    ('\u{201c}', 0x93),
    ('\u{201d}', 0x94),
    ('\u{2022}', 0x95),
    ('\u{2013}', 0x96),
    ('\u{2014}', 0x97),
    ('\u{02dc}', 0x98),
    ('\u{2122}', 0x99),
    ('\u{0161}', 0x9a),
    ('\u{203a}', 0x9b),
    ('\u{0153}', 0x9c),
    ('\u{017e}', 0x9e),
    ('\u{0178}', 0x9f),
];

/// `s` in WinAnsiEncoding. Tabs and other control characters become spaces (the caller
/// splits lines first); a few common symbols get an ASCII stand-in; anything else
/// outside WinAnsi becomes `?`, visibly.
fn winansi(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ' '..='~' => out.push(c as u8),
            '\u{00AD}' => {} // soft hyphen: invisible
            '\u{00A0}'..='\u{00FF}' => out.push(c as u32 as u8),
            c if c.is_control() => out.push(b' '),
            '\u{2192}' | '\u{27F6}' => out.extend_from_slice(b"->"),
            '\u{2190}' => out.extend_from_slice(b"<-"),
            '\u{2264}' => out.extend_from_slice(b"<="),
            '\u{2265}' => out.extend_from_slice(b">="),
            '\u{2260}' => out.extend_from_slice(b"!="),
            '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2212}' => out.push(b'-'),
            '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => out.push(b' '),
            '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => {} // zero-width
            c => match CP1252_EXTRA.iter().find(|(u, _)| *u == c) {
                Some((_, b)) => out.push(*b),
                None => out.push(b'?'),
            },
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
    Mono,
}

impl Font {
    const ALL: [Font; 3] = [Font::Regular, Font::Bold, Font::Mono];

    fn resource(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
            Font::Mono => Name(b"F3"),
        }
    }

    fn base_font(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"Helvetica"),
            Font::Bold => Name(b"Helvetica-Bold"),
            Font::Mono => Name(b"Courier"),
        }
    }

    /// Advance width of WinAnsi code `b`, in 1/1000 em.
    fn advance(self, b: u8) -> f32 {
        let table = match self {
            Font::Regular => &HELVETICA,
            Font::Bold => &HELVETICA_BOLD,
            Font::Mono => return 600.0,
        };
        match b {
            32.. => f32::from(table[usize::from(b - 32)]),
            _ => 0.0,
        }
    }

    fn width(self, size: f32, text: &[u8]) -> f32 {
        text.iter().map(|&b| self.advance(b)).sum::<f32>() * size / 1000.0
    }
}

/// Greedy word wrap of `s` (WinAnsi-mapped) into lines no wider than `width`. Newlines in
/// `s` are hard breaks; a word wider than a line is broken between characters. Every
/// character of `s` ends up on some line (apart from the spaces a break replaces).
fn wrap(s: &str, font: Font, size: f32, width: f32) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for para in s.split('\n') {
        let text = winansi(para.strip_suffix('\r').unwrap_or(para));
        let mut line: Vec<u8> = Vec::new();
        for word in text.split(|&b| b == b' ') {
            let candidate_w = if line.is_empty() {
                font.width(size, word)
            } else {
                font.width(size, &line) + font.width(size, b" ") + font.width(size, word)
            };
            if candidate_w <= width {
                if !line.is_empty() {
                    line.push(b' ');
                }
                line.extend_from_slice(word);
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: break it where it overflows.
            for &b in word {
                if !line.is_empty() && font.width(size, &line) + font.width(size, &[b]) > width {
                    lines.push(std::mem::take(&mut line));
                }
                line.push(b);
            }
        }
        lines.push(line);
    }
    lines
}

type Rgb = (f32, f32, f32);
const BLACK: Rgb = (0.1, 0.1, 0.1);
const GREY: Rgb = (0.4, 0.4, 0.4);
const DARK_RED: Rgb = (0.55, 0.0, 0.0);
const GREEN: Rgb = (0.12, 0.48, 0.12);
const RED: Rgb = (0.78, 0.16, 0.16);
const WHITE: Rgb = (1.0, 1.0, 1.0);
const HEADER_FILL: Rgb = (0.91, 0.91, 0.91);
const FAIL_FILL: Rgb = (0.99, 0.93, 0.93);
const RULE: Rgb = (0.8, 0.8, 0.8);

// A4, in points.
const PAGE_W: f32 = 595.0;
const PAGE_H: f32 = 842.0;
const MARGIN: f32 = 42.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
const TOP: f32 = PAGE_H - 44.0;
/// Content stays above this; the footer is below it.
const BOTTOM: f32 = 54.0;
const FOOTER_Y: f32 = 30.0;

// The controls table: ID | control (name, failures, evidence) | result.
const ID_X: f32 = MARGIN + 4.0;
const ID_W: f32 = 100.0;
const CTRL_X: f32 = MARGIN + 110.0;
const RESULT_X: f32 = MARGIN + CONTENT_W - 54.0;
const CTRL_W: f32 = RESULT_X - CTRL_X - 8.0;
const BADGE_W: f32 = 44.0;
const HEADER_ROW_H: f32 = 16.0;

// The header block: label | value.
const LABEL_W: f32 = 118.0;
const VALUE_X: f32 = MARGIN + LABEL_W;
const VALUE_W: f32 = CONTENT_W - LABEL_W;

struct Span {
    x: f32,
    font: Font,
    size: f32,
    color: Rgb,
    text: Vec<u8>,
}

/// One line of layout: its height, the text on it and at most one PASS/FAIL badge.
struct Line {
    height: f32,
    spans: Vec<Span>,
    badge: Option<(f32, bool)>,
}

impl Line {
    fn new(height: f32) -> Self {
        Line {
            height,
            spans: Vec::new(),
            badge: None,
        }
    }

    fn span(mut self, x: f32, font: Font, size: f32, color: Rgb, text: Vec<u8>) -> Self {
        self.spans.push(Span {
            x,
            font,
            size,
            color,
            text,
        });
        self
    }
}

/// `text` wrapped at `x`, one [`Line`] per wrapped line.
fn text_lines(
    text: &str,
    x: f32,
    width: f32,
    font: Font,
    size: f32,
    color: Rgb,
    height: f32,
) -> Vec<Line> {
    wrap(text, font, size, width)
        .into_iter()
        .map(|l| Line::new(height).span(x, font, size, color, l))
        .collect()
}

/// How a block of lines is placed.
struct Block<'a> {
    pad: f32,
    fill: Option<Rgb>,
    rule: bool,
    /// Part of the controls table: a page break repeats the table's header row, and
    /// the continued row is marked with this label (its ID) and "(continued)".
    table: bool,
    continues: &'a [u8],
}

fn put_text(
    c: &mut Content,
    x: f32,
    baseline: f32,
    font: Font,
    size: f32,
    color: Rgb,
    text: &[u8],
) {
    c.set_fill_rgb(color.0, color.1, color.2);
    c.begin_text();
    c.set_font(font.resource(), size);
    c.next_line(x, baseline);
    c.show(Str(text));
    c.end_text();
}

struct Layout {
    pages: Vec<Content>,
    y: f32,
    in_table: bool,
}

impl Layout {
    fn new() -> Self {
        Layout {
            pages: vec![Content::new()],
            y: TOP,
            in_table: false,
        }
    }

    fn page(&mut self) -> &mut Content {
        // Layout::new pushes the first page; pages are never removed.
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = TOP;
        if self.in_table {
            self.table_header();
        }
    }

    fn text(&mut self, x: f32, baseline: f32, font: Font, size: f32, color: Rgb, text: &[u8]) {
        put_text(self.page(), x, baseline, font, size, color, text);
    }

    fn fill(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        let c = self.page();
        c.set_fill_rgb(color.0, color.1, color.2);
        c.rect(x, y, w, h);
        c.fill_nonzero();
    }

    fn rule(&mut self, y: f32) {
        let c = self.page();
        c.set_stroke_rgb(RULE.0, RULE.1, RULE.2);
        c.set_line_width(0.5);
        c.move_to(MARGIN, y);
        c.line_to(MARGIN + CONTENT_W, y);
        c.stroke();
    }

    fn badge(&mut self, x: f32, baseline: f32, pass: bool) {
        self.fill(
            x,
            baseline - 3.0,
            BADGE_W,
            12.0,
            if pass { GREEN } else { RED },
        );
        let label = if pass { b"PASS" } else { b"FAIL" };
        let w = Font::Bold.width(8.0, label);
        self.text(
            x + (BADGE_W - w) / 2.0,
            baseline,
            Font::Bold,
            8.0,
            WHITE,
            label,
        );
    }

    fn table_header(&mut self) {
        let top = self.y;
        self.fill(
            MARGIN,
            top - HEADER_ROW_H,
            CONTENT_W,
            HEADER_ROW_H,
            HEADER_FILL,
        );
        let baseline = top - 11.0;
        for (x, label) in [
            (ID_X, &b"ID"[..]),
            (CTRL_X, b"Control, failure reasons, evidence"),
            (RESULT_X + 4.0, b"Result"),
        ] {
            self.text(x, baseline, Font::Bold, 8.5, BLACK, label);
        }
        self.y = top - HEADER_ROW_H;
    }

    /// Places `lines`, keeping them on one page when they fit on one, splitting them
    /// across pages (line by line) when they do not.
    fn block(&mut self, lines: Vec<Line>, style: &Block<'_>) {
        let total: f32 = lines.iter().map(|l| l.height).sum::<f32>() + 2.0 * style.pad;
        let fresh = TOP - BOTTOM - if style.table { HEADER_ROW_H } else { 0.0 };
        if total > self.y - BOTTOM && total <= fresh {
            self.new_page();
        }
        let mut i = 0;
        while i < lines.len() {
            let avail = self.y - BOTTOM - 2.0 * style.pad;
            let mut j = i;
            let mut h = 0.0;
            while j < lines.len() && h + lines[j].height <= avail {
                h += lines[j].height;
                j += 1;
            }
            if j == i {
                // Not even one line fits here; a fresh page always holds one.
                self.new_page();
                continue;
            }
            let top = self.y;
            let bottom = top - h - 2.0 * style.pad;
            if let Some(fill) = style.fill {
                self.fill(MARGIN, bottom, CONTENT_W, top - bottom, fill);
            }
            let mut y = top - style.pad;
            for (k, line) in lines[i..j].iter().enumerate() {
                let baseline = y - line.height + 2.8;
                for s in &line.spans {
                    self.text(s.x, baseline, s.font, s.size, s.color, &s.text);
                }
                if i > 0 && style.table && !line.spans.iter().any(|s| s.x == ID_X) {
                    match k {
                        0 => self.text(ID_X, baseline, Font::Bold, 9.0, GREY, style.continues),
                        1 => self.text(ID_X, baseline, Font::Regular, 7.5, GREY, b"(continued)"),
                        _ => {}
                    }
                }
                if let Some((x, pass)) = line.badge {
                    self.badge(x, baseline, pass);
                }
                y -= line.height;
            }
            if style.rule {
                self.rule(bottom);
            }
            self.y = bottom;
            i = j;
            if i < lines.len() {
                self.new_page();
            }
        }
    }

    fn gap(&mut self, h: f32) {
        self.y -= h;
    }
}

/// The header block's `label: value` rows; `mono` sets the value in Courier.
fn meta_lines(label: &str, value: &str, mono: bool, color: Rgb) -> Vec<Line> {
    let (font, size) = if mono {
        (Font::Mono, 8.5)
    } else {
        (Font::Regular, 9.0)
    };
    let mut lines = text_lines(value, VALUE_X, VALUE_W, font, size, color, 12.0);
    let labels = text_lines(label, MARGIN, LABEL_W - 6.0, Font::Bold, 9.0, BLACK, 12.0);
    for (k, l) in labels.into_iter().enumerate() {
        if k >= lines.len() {
            lines.push(Line::new(12.0));
        }
        lines[k].spans.extend(l.spans);
    }
    lines
}

/// One control's row: ID | name, failure reasons, evidence | badge.
fn control_lines(c: &ControlResult) -> Vec<Line> {
    let pass = c.result == Verdict::Pass;
    let mut middle = text_lines(&c.name, CTRL_X, CTRL_W, Font::Bold, 9.0, BLACK, 11.5);
    for f in &c.failures {
        let wrapped = wrap(f, Font::Regular, 8.5, CTRL_W - 10.0);
        for (k, l) in wrapped.into_iter().enumerate() {
            let mut line = Line::new(10.5).span(CTRL_X + 10.0, Font::Regular, 8.5, DARK_RED, l);
            if k == 0 {
                line = line.span(CTRL_X + 2.0, Font::Regular, 8.5, DARK_RED, vec![0x95]);
            }
            middle.push(line);
        }
    }
    if c.evidence.is_empty() {
        middle.push(Line::new(10.5).span(
            CTRL_X,
            Font::Regular,
            7.5,
            GREY,
            b"Evidence: none".to_vec(),
        ));
    } else {
        let n = c.evidence.len();
        let label = format!("Evidence ({n} file{}):", if n == 1 { "" } else { "s" });
        middle.push(Line::new(10.5).span(CTRL_X, Font::Regular, 7.5, GREY, label.into_bytes()));
        // Courier 7.5: 4.5 pt a character; the short hash takes 19 of them.
        let path_x = CTRL_X + 10.0 + 21.0 * 4.5;
        for e in &c.evidence {
            let paths = wrap(&e.path, Font::Mono, 7.5, CTRL_X + CTRL_W - path_x);
            for (k, p) in paths.into_iter().enumerate() {
                let mut line = Line::new(9.5).span(path_x, Font::Mono, 7.5, BLACK, p);
                if k == 0 {
                    line = line.span(
                        CTRL_X + 10.0,
                        Font::Mono,
                        7.5,
                        GREY,
                        short(&e.sha256).into_bytes(),
                    );
                }
                middle.push(line);
            }
        }
    }
    let ids = wrap(&c.id, Font::Bold, 9.0, ID_W);
    for (k, id) in ids.into_iter().enumerate() {
        if k >= middle.len() {
            middle.push(Line::new(11.5));
        }
        middle[k].spans.push(Span {
            x: ID_X,
            font: Font::Bold,
            size: 9.0,
            color: BLACK,
            text: id,
        });
    }
    middle[0].badge = Some((RESULT_X + 4.0, pass));
    middle
}

/// The report as a PDF (A4, Helvetica and Courier, paginated, "page N of M").
pub fn pdf(header: &ReportHeader<'_>, pred: &ControlsPredicate) -> Vec<u8> {
    let title = title(header);
    let mut l = Layout::new();
    let plain = Block {
        pad: 0.0,
        fill: None,
        rule: false,
        table: false,
        continues: b"",
    };

    l.block(
        text_lines(&title, MARGIN, CONTENT_W, Font::Bold, 16.0, BLACK, 20.0),
        &plain,
    );
    l.gap(8.0);

    let meta = Block { pad: 1.0, ..plain };
    l.block(meta_lines("Subject", header.subject, false, BLACK), &meta);
    l.block(
        meta_lines("Image digest", header.digest, true, BLACK),
        &meta,
    );
    l.block(meta_lines("Pack", &pred.pack.image, false, BLACK), &meta);
    if let Some(d) = digest_mismatch(header, pred) {
        l.block(
            meta_lines(
                "",
                &format!("pack digest {d} differs from the image digest"),
                false,
                RED,
            ),
            &meta,
        );
    }
    l.block(
        meta_lines(
            "Pack manifest sha256",
            &pred.pack.manifest_sha256.to_string(),
            true,
            BLACK,
        ),
        &meta,
    );
    l.block(
        meta_lines("Catalog", &pred.catalog.path, false, BLACK),
        &meta,
    );
    l.block(
        meta_lines("", &pred.catalog.sha256.to_string(), true, BLACK),
        &meta,
    );
    l.block(
        match header.signer {
            Some(s) => meta_lines("Signer", s, false, BLACK),
            None => meta_lines("Signer", "unsigned", false, RED),
        },
        &meta,
    );
    l.block(
        match header.statement_sha256 {
            Some(s) => meta_lines("Statement sha256", s, true, BLACK),
            None => meta_lines("Statement sha256", "not given", false, GREY),
        },
        &meta,
    );
    l.block(
        meta_lines("Predicate type", PREDICATE_TYPE, true, BLACK),
        &meta,
    );
    l.gap(10.0);

    let s = pred.summary;
    let summary = format!(
        "{} controls: {} passed, {} failed",
        s.total, s.passed, s.failed
    );
    let mut lines = text_lines(
        &summary,
        MARGIN + BADGE_W + 8.0,
        CONTENT_W - BADGE_W - 8.0,
        Font::Bold,
        11.0,
        BLACK,
        16.0,
    );
    lines[0].badge = Some((MARGIN, overall_pass(pred)));
    l.block(lines, &Block { pad: 2.0, ..plain });
    l.gap(8.0);

    // The table's header row, with at least its first row under it.
    if l.y - HEADER_ROW_H - 40.0 < BOTTOM {
        l.new_page();
    }
    l.table_header();
    l.in_table = true;
    for c in &pred.controls {
        let fail = c.result == Verdict::Fail;
        // The ID's first line marks a continued row (all of it is on the row's first page).
        let first_id = wrap(&c.id, Font::Bold, 9.0, ID_W).swap_remove(0);
        l.block(
            control_lines(c),
            &Block {
                pad: 4.0,
                fill: fail.then_some(FAIL_FILL),
                rule: true,
                table: true,
                continues: &first_id,
            },
        );
    }
    if pred.controls.is_empty() {
        l.block(
            text_lines(
                "The catalog has no controls.",
                CTRL_X,
                CTRL_W,
                Font::Regular,
                9.0,
                GREY,
                11.5,
            ),
            &Block {
                pad: 4.0,
                fill: None,
                rule: true,
                table: true,
                continues: b"",
            },
        );
    }

    // Footers, now that the page count is known.
    let total = l.pages.len();
    let footer_left = {
        let mut t = winansi(&title);
        let max = CONTENT_W - 90.0;
        if Font::Regular.width(7.5, &t) > max {
            while !t.is_empty()
                && Font::Regular.width(7.5, &t) + Font::Regular.width(7.5, b"...") > max
            {
                t.pop();
            }
            t.extend_from_slice(b"...");
        }
        t
    };
    for (n, c) in l.pages.iter_mut().enumerate() {
        let right = format!("page {} of {total}", n + 1).into_bytes();
        c.set_stroke_rgb(RULE.0, RULE.1, RULE.2);
        c.set_line_width(0.5);
        c.move_to(MARGIN, FOOTER_Y + 11.0);
        c.line_to(MARGIN + CONTENT_W, FOOTER_Y + 11.0);
        c.stroke();
        put_text(c, MARGIN, FOOTER_Y, Font::Regular, 7.5, GREY, &footer_left);
        let w = Font::Regular.width(7.5, &right);
        let x = MARGIN + CONTENT_W - w;
        put_text(c, x, FOOTER_Y, Font::Regular, 7.5, GREY, &right);
    }

    assemble(&title, l.pages)
}

/// Writes the document: catalog 1, page tree 2, info 3, fonts 4..=6, then each page and
/// its content stream. The file id is a hash of the content, so it is the same for the
/// same report and different for a different one.
fn assemble(title: &str, pages: Vec<Content>) -> Vec<u8> {
    let streams: Vec<Vec<u8>> = pages.into_iter().map(|c| c.finish().to_vec()).collect();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let font_ref = |f: Font| {
        Ref::new(match f {
            Font::Regular => 4,
            Font::Bold => 5,
            Font::Mono => 6,
        })
    };
    let page_ref = |i: usize| Ref::new(7 + 2 * i as i32);
    let content_ref = |i: usize| Ref::new(8 + 2 * i as i32);

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids((0..streams.len()).map(page_ref))
        .count(streams.len() as i32);
    for f in Font::ALL {
        pdf.type1_font(font_ref(f))
            .base_font(f.base_font())
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, stream) in streams.iter().enumerate() {
        let mut page = pdf.page(page_ref(i));
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents(content_ref(i));
        {
            let mut resources = page.resources();
            let mut fonts = resources.fonts();
            for f in Font::ALL {
                fonts.pair(f.resource(), font_ref(f));
            }
        }
        page.finish();
        pdf.stream(content_ref(i), stream);
    }
    pdf.document_info(info)
        .title(TextStr(title))
        .creator(TextStr("kiln"))
        .producer(TextStr("kiln (pdf-writer)"));
    let mut all = title.as_bytes().to_vec();
    for s in &streams {
        all.extend_from_slice(s);
    }
    let id = Digest::of(&all).as_bytes()[..16].to_vec();
    pdf.set_file_id((id.clone(), id));
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predicate::{AssertionResult, FileRef, PackRef, Tally};

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn control(i: usize, fail: bool, name: &str) -> ControlResult {
        ControlResult {
            id: format!("CTRL-{i:03}"),
            name: name.to_string(),
            result: if fail { Verdict::Fail } else { Verdict::Pass },
            evidence: vec![
                FileRef {
                    path: "sbom.cdx.json".into(),
                    sha256: d(&format!("sbom{i}")),
                },
                FileRef {
                    path: format!("scans/scanner-{i}.sarif"),
                    sha256: d(&format!("scan{i}")),
                },
            ],
            assertions: vec![AssertionResult {
                kind: "sarif_no_levels".into(),
                result: if fail { Verdict::Fail } else { Verdict::Pass },
                detail: "checked".into(),
            }],
            failures: if fail {
                vec![format!(
                    "reason-{i}: scans/scanner-{i}.sarif has 3 results at level error \
                     (rule CVE-2024-{i:04} in crate foo, rule CVE-2024-{i:04}b in crate bar, \
                     and one more in a vendored dependency whose path is very long indeed)"
                )]
            } else {
                vec![]
            },
        }
    }

    fn predicate(controls: Vec<ControlResult>) -> ControlsPredicate {
        let failed = controls
            .iter()
            .filter(|c| c.result == Verdict::Fail)
            .count();
        ControlsPredicate {
            catalog: FileRef {
                path: "controls/catalog.toml".into(),
                sha256: d("catalog"),
            },
            pack: PackRef {
                manifest_sha256: d("manifest"),
                image: "hello".into(),
                digest: d("image"),
            },
            summary: Tally {
                total: controls.len(),
                passed: controls.len() - failed,
                failed,
            },
            controls,
        }
    }

    fn many(n: usize) -> ControlsPredicate {
        predicate(
            (0..n)
                .map(|i| control(i, i % 3 == 1, &format!("Control number {i} holds")))
                .collect(),
        )
    }

    fn header_for(digest: &str) -> ReportHeader<'_> {
        ReportHeader {
            subject: "hello:0.1.0",
            digest,
            signer: Some("key 0123abcd"),
            statement_sha256: Some("sha256:feed"),
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn count(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }

    fn page_count(pdf: &[u8]) -> usize {
        let n = b"/Type /Page";
        (0..pdf.len().saturating_sub(n.len()))
            .filter(|&i| &pdf[i..i + n.len()] == n && pdf[i + n.len()] != b's')
            .count()
    }

    #[test]
    fn same_input_same_bytes() {
        let p = many(20);
        let digest = d("image").to_string();
        let h = header_for(&digest);
        assert_eq!(html(&h, &p), html(&h, &p));
        let a = pdf(&h, &p);
        assert_eq!(a, pdf(&h, &p));
        assert!(a.starts_with(b"%PDF-1.7"));
        assert!(!contains(&a, b"CreationDate") && !contains(&a, b"ModDate"));
        // A different report gets a different file id.
        let other = pdf(&h, &many(21));
        let id = |pdf: &[u8]| {
            let at = pdf.windows(4).rposition(|w| w == b"/ID ").unwrap();
            pdf[at..at + 40].to_vec()
        };
        assert_ne!(id(&a), id(&other));
    }

    #[test]
    fn html_escapes_untrusted_text() {
        let mut c = control(1, true, "<script>alert(\"x\")</script> & 'quote'");
        c.failures = vec!["bad <img src=x onerror=alert(1)> \u{0}".into()];
        c.id = "ID<&>".into();
        let p = predicate(vec![c]);
        let digest = d("image").to_string();
        let out = html(&header_for(&digest), &p);
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains("<img"), "{out}");
        assert!(
            out.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quote&#39;")
        );
        assert!(out.contains("ID&lt;&amp;&gt;"));
        assert!(out.contains("bad &lt;img src=x onerror=alert(1)&gt; \u{FFFD}"));
    }

    #[test]
    fn html_has_the_summary_and_every_control() {
        let p = many(7);
        let digest = d("image").to_string();
        let out = html(&header_for(&digest), &p);
        assert!(out.contains("<title>Control attestation \u{2014} hello:0.1.0</title>"));
        assert!(out.contains("7 controls: 5 passed, 2 failed"));
        assert!(out.contains("key 0123abcd"));
        assert!(out.contains(&short(&d("sbom3"))));
        assert!(out.contains(&p.catalog.sha256.to_string()));
        for c in &p.controls {
            assert!(out.contains(&format!("<td class=\"id\">{}</td>", c.id)));
        }
        assert!(out.contains("reason-1:") && out.contains("reason-4:"));
        assert!(!out.contains("reason-2:"));
        assert!(out.contains("badge fail"));
        // Self-contained: no scripts, no external resources; the one URL is the predicate
        // type, as text.
        for bad in [
            "<script", "<link", "<img", "src=", "url(", "@import", "http://",
        ] {
            assert!(!out.contains(bad), "{bad}");
        }
        assert_eq!(out.matches("https://").count(), 1);
    }

    #[test]
    fn many_controls_paginate_and_nothing_is_lost() {
        let p = many(60);
        let digest = d("image").to_string();
        let out = pdf(&header_for(&digest), &p);
        let pages = page_count(&out);
        assert!(pages > 1, "{pages} pages");
        for c in &p.controls {
            assert!(
                contains(&out, format!("({})", c.id).as_bytes()),
                "{} missing",
                c.id
            );
        }
        for n in 1..=pages {
            assert!(contains(&out, format!("(page {n} of {pages})").as_bytes()));
        }
        assert!(contains(&out, b"(FAIL)") && contains(&out, b"(PASS)"));
        assert!(contains(&out, b"reason-1:") && contains(&out, b"reason-58:"));
        // The em dash of the title is WinAnsi 0x97 (a hex string, being non-ASCII).
        let hex: String = b"Control attestation \x97 hello:0.1.0"
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(contains(&out.to_ascii_lowercase(), hex.as_bytes()), "{hex}");
    }

    #[test]
    fn a_control_longer_than_a_page_continues() {
        let mut c = control(1, true, "huge");
        c.failures = (0..150).map(|i| format!("failure number {i}")).collect();
        let p = predicate(vec![c, control(2, false, "after")]);
        let digest = d("image").to_string();
        let out = pdf(&header_for(&digest), &p);
        assert!(page_count(&out) >= 3);
        assert!(contains(&out, b"(failure number 0)"));
        assert!(contains(&out, b"(failure number 149)"));
        assert!(contains(&out, b"(continued)"));
        assert_eq!(count(&out, b"(CTRL-001)"), page_count(&out));
        assert!(contains(&out, b"(CTRL-002)"));
    }

    #[test]
    fn an_empty_catalog_renders_one_page() {
        let p = predicate(vec![]);
        let digest = d("image").to_string();
        let out = pdf(&header_for(&digest), &p);
        assert_eq!(page_count(&out), 1);
        assert!(contains(&out, b"(The catalog has no controls.)"));
        assert!(contains(&out, b"(page 1 of 1)"));
        assert!(html(&header_for(&digest), &p).contains("0 controls: 0 passed, 0 failed"));
    }

    #[test]
    fn text_is_winansi_and_wraps_without_loss() {
        assert_eq!(winansi("a\u{2014}b"), b"a\x97b");
        assert_eq!(
            winansi("caf\u{e9} \u{540d}\u{524d} \u{2192}"),
            b"caf\xe9 ?? ->"
        );
        assert_eq!(winansi("tab\there"), b"tab here");
        let long = format!("{} {}", "x".repeat(300), "short words here");
        let lines = wrap(&long, Font::Regular, 9.0, 200.0);
        assert!(lines.len() > 2);
        for l in &lines {
            assert!(Font::Regular.width(9.0, l) <= 200.0);
        }
        let joined: Vec<u8> = lines.concat();
        assert_eq!(
            joined.iter().filter(|&&b| b == b'x').count(),
            300,
            "a long word is broken, not cut"
        );
        assert_eq!(
            wrap("a\nb", Font::Regular, 9.0, 200.0),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn a_digest_mismatch_and_an_unsigned_report_are_shown() {
        let p = many(2);
        let h = ReportHeader {
            subject: "hello:0.1.0",
            digest: "sha256:0000",
            signer: None,
            statement_sha256: None,
        };
        let out = html(&h, &p);
        assert!(out.contains("differs from the image digest"));
        assert!(out.contains("unsigned"));
        let out = pdf(&h, &p);
        assert!(contains(&out, b"differs from the image digest"));
        assert!(contains(&out, b"(unsigned)"));
    }
}
