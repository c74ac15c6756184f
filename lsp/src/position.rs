//! Conversion between byte offsets and LSP positions.
//!
//! An LSP position is a line and a character offset in the negotiated encoding: UTF-16 code
//! units by default, or bytes when the client offers UTF-8. Lines end at `\n`, `\r\n` or a
//! lone `\r`, as the protocol specifies. Positions past the end of a line or of the text are
//! clamped, and a position inside a character (such as between the two UTF-16 units of an
//! emoji) moves back to the start of that character. No input can make a conversion panic.

use tower_lsp_server::ls_types::Position;

/// The unit in which LSP positions count characters within a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16,
}

impl Encoding {
    fn width(self, c: char) -> u32 {
        match self {
            Encoding::Utf8 => c.len_utf8() as u32,
            Encoding::Utf16 => c.len_utf16() as u32,
        }
    }
}

/// The start and content end (line break excluded) of every line of a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineIndex {
    lines: Vec<(u32, u32)>,
    len: u32,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let bytes = text.as_bytes();
        let mut lines = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => {
                    lines.push((start as u32, i as u32));
                    start = i + 1;
                }
                b'\r' => {
                    lines.push((start as u32, i as u32));
                    if bytes.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        lines.push((start as u32, bytes.len() as u32));
        LineIndex { lines, len: bytes.len() as u32 }
    }

    /// Converts `position` to a byte offset in `text`, clamped to the text.
    pub fn offset(&self, text: &str, position: Position, encoding: Encoding) -> u32 {
        let Some(&(start, end)) = self.lines.get(position.line as usize) else { return self.len };
        let line = &text[start as usize..end as usize];
        let mut units = 0;
        for (i, c) in line.char_indices() {
            let next = units + encoding.width(c);
            if next > position.character {
                return start + i as u32;
            }
            units = next;
        }
        end
    }

    /// Converts byte offset `offset` in `text` to a position, clamped to the text.
    pub fn position(&self, text: &str, offset: u32, encoding: Encoding) -> Position {
        let mut offset = offset.min(self.len) as usize;
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.lines.partition_point(|&(start, _)| start as usize <= offset).saturating_sub(1);
        let (start, end) = self.lines[line];
        let offset = offset.min(end as usize);
        let character = text[start as usize..offset].chars().map(|c| encoding.width(c)).sum();
        Position { line: line as u32, character }
    }

    /// Finds the line that contains byte offset `offset`.
    pub fn line_of(&self, offset: u32) -> u32 {
        (self.lines.partition_point(|&(start, _)| start <= offset).saturating_sub(1)) as u32
    }
}

/// Converts ascending offsets without rescanning each line from its start, which keeps
/// semantic tokens linear on a file that is one long line.
pub struct Cursor<'a> {
    index: &'a LineIndex,
    text: &'a str,
    encoding: Encoding,
    offset: u32,
    position: Position,
}

impl<'a> Cursor<'a> {
    pub fn new(index: &'a LineIndex, text: &'a str, encoding: Encoding) -> Cursor<'a> {
        Cursor { index, text, encoding, offset: 0, position: Position { line: 0, character: 0 } }
    }

    /// The position of `offset`; offsets must not decrease between calls.
    pub fn position(&mut self, offset: u32) -> Position {
        let line = self.index.line_of(offset);
        if line != self.position.line || offset < self.offset {
            self.position = self.index.position(self.text, offset, self.encoding);
            self.offset = offset;
            return self.position;
        }
        let end = (offset.min(self.index.lines[line as usize].1)) as usize;
        let mut end = end.max(self.offset as usize);
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let added: u32 = self.text[self.offset as usize..end].chars().map(|c| self.encoding.width(c)).sum();
        self.position.character += added;
        self.offset = end as u32;
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn offsets_round_trip_with_crlf_emoji_tab() {
        let text = "a\tb\r\nx😀y\rlast\n";
        let index = LineIndex::new(text);
        let cases = [(pos(0, 0), 0), (pos(0, 2), 2), (pos(1, 0), 5), (pos(1, 1), 6), (pos(1, 3), 10), (pos(1, 4), 11), (pos(2, 0), 12), (pos(3, 0), 17)];
        for (p, offset) in cases {
            assert_eq!(index.offset(text, p, Encoding::Utf16), offset, "{p:?}");
            assert_eq!(index.position(text, offset, Encoding::Utf16), p, "{offset}");
        }
        assert_eq!(index.offset(text, pos(1, 5), Encoding::Utf8), 10);
    }

    #[test]
    fn out_of_range_positions_clamp() {
        let text = "ab\r\ncd";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(text, pos(0, 99), Encoding::Utf16), 2);
        assert_eq!(index.offset(text, pos(99, 0), Encoding::Utf16), 6);
        assert_eq!(index.position(text, 3, Encoding::Utf16), pos(0, 2), "inside the line break");
        assert_eq!(index.position(text, 99, Encoding::Utf16), pos(1, 2));
    }

    #[test]
    fn position_inside_surrogate_pair_moves_back() {
        let text = "😀x";
        let index = LineIndex::new(text);
        assert_eq!(index.offset(text, pos(0, 1), Encoding::Utf16), 0);
        assert_eq!(index.position(text, 2, Encoding::Utf16), pos(0, 0));
    }

    #[test]
    fn cursor_matches_direct_conversion() {
        let text = "é😀 a\nb😀c d\n";
        let index = LineIndex::new(text);
        let mut cursor = Cursor::new(&index, text, Encoding::Utf16);
        for offset in [0, 2, 6, 7, 9, 10, 14, 15] {
            assert_eq!(cursor.position(offset), index.position(text, offset, Encoding::Utf16), "{offset}");
        }
    }
}
