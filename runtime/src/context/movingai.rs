//! MovingAI grid benchmarks: octile `.map` files and their `.scen` scenario lists.
//!
//! A `.map` file reads
//!
//! ```text
//! type octile
//! height H
//! width W
//! map
//! <H rows of W characters>
//! ```
//!
//! where `.`, `G` and `S` are free and `@`, `O`, `T` and `W` are blocked. The header keys may
//! come in any order before `map`. A `.scen` file starts with `version 1` and then has one
//! scenario per line with 9 tab-separated fields: bucket, map file, map width, map height,
//! start x, start y, goal x, goal y, optimal length. x is the column and y the row, both from 0,
//! and row 0 is the first map row, which is also row 0 of the [`Grid`].
//!
//! Both parsers accept `\n` and `\r\n` line endings and trailing blank lines.

use std::path::Path;

use super::error::{ContextError, read_text};
use super::grid::Grid;

/// Loads a MovingAI octile `.map` file as a grid with square cells of `cell_size` metres and its
/// origin at (0, 0).
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn load_map(path: &Path, cell_size: f64) -> Result<Grid, ContextError> {
    let text = read_text(path)?;
    parse_map(path, &text, cell_size)
}

/// Parses the text of a MovingAI octile `.map` file; `path` only names the file in errors.
pub fn parse_map(path: &Path, text: &str, cell_size: f64) -> Result<Grid, ContextError> {
    if !(cell_size.is_finite() && cell_size > 0.0) {
        return Err(ContextError::invalid(
            path,
            format!("the cell size must be a positive number of metres, got {cell_size}"),
        ));
    }

    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    let header = parse_map_header(path, &mut lines)?;

    let mut blocked = Vec::with_capacity(header.width.saturating_mul(header.height).min(1 << 24));
    for row in 0..header.height {
        let Some((number, line)) = lines.next() else {
            return Err(ContextError::format_at(
                path,
                text.lines().count() + 1,
                None,
                format!(
                    "expected {} map rows after `map`, found {row}",
                    header.height
                ),
            ));
        };
        parse_map_row(path, number, line, header.width, &mut blocked)?;
    }

    if let Some((number, _)) = lines.find(|(_, line)| !line.trim().is_empty()) {
        return Err(ContextError::format_at(
            path,
            number,
            None,
            format!(
                "expected the end of the file after the {} map rows given by `height`, found more text",
                header.height
            ),
        ));
    }

    Ok(Grid::from_cells(
        header.width,
        header.height,
        cell_size,
        blocked,
    ))
}

struct MapHeader {
    width: usize,
    height: usize,
}

fn parse_map_header<'a>(
    path: &Path,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<MapHeader, ContextError> {
    let mut kind_seen = false;
    let mut width = None;
    let mut height = None;
    let mut last_line = 0;

    for (number, line) in lines.by_ref() {
        last_line = number;
        let line = line.trim_end_matches('\r');
        let mut words = line.split_whitespace();
        let key = words.next().unwrap_or("");
        let value = words.next();
        if words.next().is_some() {
            return Err(ContextError::format_at(
                path,
                number,
                None,
                format!("expected a header line `KEY VALUE`, found `{line}`"),
            ));
        }
        match (key, value) {
            ("map", None) => {
                let missing = [
                    ("type", kind_seen),
                    ("height", height.is_some()),
                    ("width", width.is_some()),
                ]
                .iter()
                .filter(|(_, seen)| !seen)
                .map(|(key, _)| format!("`{key}`"))
                .collect::<Vec<_>>();
                if !missing.is_empty() {
                    return Err(ContextError::format_at(
                        path,
                        number,
                        None,
                        format!(
                            "expected the header line {} before `map`",
                            missing.join(" and ")
                        ),
                    ));
                }
                return Ok(MapHeader {
                    width: width.unwrap_or(0),
                    height: height.unwrap_or(0),
                });
            }
            ("type", Some(kind)) if !kind_seen => {
                if kind != "octile" {
                    return Err(ContextError::format_at(
                        path,
                        number,
                        None,
                        format!("expected `type octile`, found `type {kind}`"),
                    ));
                }
                kind_seen = true;
            }
            ("height", Some(value)) if height.is_none() => {
                height = Some(parse_dimension(path, number, "height", value)?);
            }
            ("width", Some(value)) if width.is_none() => {
                width = Some(parse_dimension(path, number, "width", value)?);
            }
            ("type" | "height" | "width", Some(_)) => {
                return Err(ContextError::format_at(
                    path,
                    number,
                    None,
                    format!("`{key}` appears twice in the header"),
                ));
            }
            _ => {
                return Err(ContextError::format_at(
                    path,
                    number,
                    None,
                    format!(
                        "expected a header line `type octile`, `height H`, `width W` or `map`, found `{line}`"
                    ),
                ));
            }
        }
    }

    Err(ContextError::format_at(
        path,
        last_line + 1,
        None,
        "expected the header line `map` before the end of the file",
    ))
}

fn parse_dimension(
    path: &Path,
    line: usize,
    key: &str,
    value: &str,
) -> Result<usize, ContextError> {
    match value.parse::<usize>() {
        Ok(size) if size > 0 => Ok(size),
        _ => Err(ContextError::format_at(
            path,
            line,
            None,
            format!("expected a positive whole number after `{key}`, found `{value}`"),
        )),
    }
}

fn parse_map_row(
    path: &Path,
    number: usize,
    line: &str,
    width: usize,
    blocked: &mut Vec<bool>,
) -> Result<(), ContextError> {
    let line = line.trim_end_matches('\r');
    let mut count = 0;
    for (index, character) in line.chars().enumerate() {
        let column = index + 1;
        if count == width {
            return Err(ContextError::format_at(
                path,
                number,
                Some(column),
                format!("expected {width} cells in the row, found more"),
            ));
        }
        let is_blocked = match character {
            '.' | 'G' | 'S' => false,
            '@' | 'O' | 'T' | 'W' => true,
            other => {
                return Err(ContextError::format_at(
                    path,
                    number,
                    Some(column),
                    format!(
                        "expected a map cell (`.`, `G`, `S` free; `@`, `O`, `T`, `W` blocked), found {other:?}"
                    ),
                ));
            }
        };
        blocked.push(is_blocked);
        count += 1;
    }
    if count < width {
        return Err(ContextError::format_at(
            path,
            number,
            Some(count + 1),
            format!("expected {width} cells in the row, found {count}"),
        ));
    }
    Ok(())
}

/// One start and goal pair from a `.scen` file. Coordinates are cells: x is the column and y
/// the row, both from 0, row 0 at the top.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Difficulty bucket the benchmark authors put the scenario in.
    pub bucket: u32,
    /// The `.map` file the scenario was made for, as written in the file.
    pub map: String,
    /// Width of that map in cells.
    pub map_width: usize,
    /// Height of that map in cells.
    pub map_height: usize,
    /// Start cell `(x, y)`.
    pub start: (usize, usize),
    /// Goal cell `(x, y)`.
    pub goal: (usize, usize),
    /// Length of a shortest 8-connected path in cells, with diagonal steps of √2 and no
    /// corner cutting.
    pub optimal_length: f64,
}

/// Loads a MovingAI `.scen` file.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn load_scen(path: &Path) -> Result<Vec<Scenario>, ContextError> {
    let text = read_text(path)?;
    parse_scen(path, &text)
}

/// Parses the text of a MovingAI `.scen` file; `path` only names the file in errors.
pub fn parse_scen(path: &Path, text: &str) -> Result<Vec<Scenario>, ContextError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line));

    let version = lines.next().map(|(_, line)| line.trim_end_matches('\r'));
    let version_number = version
        .and_then(|line| line.strip_prefix("version"))
        .map(str::trim);
    if !matches!(version_number, Some("1" | "1.0")) {
        return Err(ContextError::format_at(
            path,
            1,
            None,
            format!(
                "expected `version 1` on the first line, found `{}`",
                version.unwrap_or("")
            ),
        ));
    }

    let mut scenarios = Vec::new();
    for (number, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        scenarios.push(parse_scenario(path, number, line)?);
    }
    Ok(scenarios)
}

fn parse_scenario(path: &Path, number: usize, line: &str) -> Result<Scenario, ContextError> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != 9 {
        return Err(ContextError::format_at(
            path,
            number,
            None,
            format!(
                "expected 9 tab-separated fields (bucket, map, width, height, start x, start y, goal x, goal y, optimal length), found {}",
                fields.len()
            ),
        ));
    }

    let whole = |index: usize, name: &str| -> Result<usize, ContextError> {
        fields[index].trim().parse::<usize>().map_err(|_| {
            ContextError::format_at(
                path,
                number,
                Some(field_column(&fields, index)),
                format!(
                    "expected a whole number for {name}, found `{}`",
                    fields[index]
                ),
            )
        })
    };

    let bucket = whole(0, "the bucket")?;
    let bucket = u32::try_from(bucket).map_err(|_| {
        ContextError::format_at(
            path,
            number,
            Some(1),
            format!("expected a bucket below 2^32, found {bucket}"),
        )
    })?;
    let map_width = whole(2, "the map width")?;
    let map_height = whole(3, "the map height")?;
    let start = (whole(4, "the start x")?, whole(5, "the start y")?);
    let goal = (whole(6, "the goal x")?, whole(7, "the goal y")?);

    let optimal_length = fields[8]
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|length| length.is_finite() && *length >= 0.0)
        .ok_or_else(|| {
            ContextError::format_at(
                path,
                number,
                Some(field_column(&fields, 8)),
                format!(
                    "expected a non-negative number for the optimal length, found `{}`",
                    fields[8]
                ),
            )
        })?;

    for (name, (x, y)) in [("start", start), ("goal", goal)] {
        if x >= map_width || y >= map_height {
            return Err(ContextError::format_at(
                path,
                number,
                None,
                format!("expected the {name} ({x}, {y}) inside the {map_width}×{map_height} map"),
            ));
        }
    }

    Ok(Scenario {
        bucket,
        map: fields[1].to_string(),
        map_width,
        map_height,
        start,
        goal,
        optimal_length,
    })
}

/// Column, from 1, where field `index` of a tab-separated line starts.
fn field_column(fields: &[&str], index: usize) -> usize {
    1 + fields[..index]
        .iter()
        .map(|field| field.chars().count() + 1)
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(text: &str) -> Result<Grid, ContextError> {
        parse_map(Path::new("test.map"), text, 1.0)
    }

    fn scen(text: &str) -> Result<Vec<Scenario>, ContextError> {
        parse_scen(Path::new("test.scen"), text)
    }

    fn message(result: Result<impl std::fmt::Debug, ContextError>) -> String {
        result.expect_err("expected an error").to_string()
    }

    #[test]
    fn map_reads_cells_row_major_from_the_top() {
        let grid = map("type octile\nheight 2\nwidth 3\nmap\n.@T\nGSW\n").unwrap();

        assert_eq!((grid.width(), grid.height()), (3, 2));
        assert_eq!(grid.cells(), &[false, true, true, false, false, true]);
    }

    #[test]
    fn map_accepts_crlf_and_header_in_any_order() {
        let grid = map("width 2\r\ntype octile\r\nheight 1\r\nmap\r\n.O\r\n\r\n").unwrap();

        assert_eq!(grid.cells(), &[false, true]);
    }

    #[test]
    fn map_errors_name_line_column_and_expectation() {
        let cases = [
            (
                "",
                "test.map:1: expected the header line `map` before the end of the file",
            ),
            (
                "type grid\n",
                "test.map:1: expected `type octile`, found `type grid`",
            ),
            (
                "type octile\nheight 1\nmap\n",
                "test.map:3: expected the header line `width` before `map`",
            ),
            (
                "type octile\nheight x\n",
                "test.map:2: expected a positive whole number after `height`, found `x`",
            ),
            (
                "type octile\nheight 1\nwidth 2\nmap\n.x\n",
                "test.map:5:2: expected a map cell (`.`, `G`, `S` free; `@`, `O`, `T`, `W` blocked), found 'x'",
            ),
            (
                "type octile\nheight 1\nwidth 2\nmap\n.\n",
                "test.map:5:2: expected 2 cells in the row, found 1",
            ),
            (
                "type octile\nheight 1\nwidth 2\nmap\n...\n",
                "test.map:5:3: expected 2 cells in the row, found more",
            ),
            (
                "type octile\nheight 2\nwidth 1\nmap\n.\n",
                "test.map:6: expected 2 map rows after `map`, found 1",
            ),
            (
                "type octile\nheight 1\nwidth 1\nmap\n.\n.\n",
                "test.map:6: expected the end of the file after the 1 map rows given by `height`, found more text",
            ),
            (
                "type octile\ntype octile\n",
                "test.map:2: `type` appears twice in the header",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(map(text)), expected, "map text {text:?}");
        }
    }

    #[test]
    fn map_rejects_bad_cell_size() {
        let result = parse_map(
            Path::new("test.map"),
            "type octile\nheight 1\nwidth 1\nmap\n.\n",
            0.0,
        );

        assert_eq!(
            message(result),
            "test.map: the cell size must be a positive number of metres, got 0"
        );
    }

    #[test]
    fn scen_reads_fields() {
        let scenarios = scen("version 1\r\n3\tm.map\t4\t5\t0\t1\t3\t4\t4.41421356\r\n").unwrap();

        assert_eq!(
            scenarios,
            vec![Scenario {
                bucket: 3,
                map: "m.map".to_string(),
                map_width: 4,
                map_height: 5,
                start: (0, 1),
                goal: (3, 4),
                optimal_length: 4.41421356,
            }]
        );
    }

    #[test]
    fn scen_errors_name_line_and_expectation() {
        let cases = [
            (
                "",
                "test.scen:1: expected `version 1` on the first line, found ``",
            ),
            (
                "version 2\n",
                "test.scen:1: expected `version 1` on the first line, found `version 2`",
            ),
            (
                "version 1\n1\tm.map\t4\t4\t0\t0\t1\n",
                "test.scen:2: expected 9 tab-separated fields (bucket, map, width, height, start x, start y, goal x, goal y, optimal length), found 7",
            ),
            (
                "version 1\n1\tm.map\t4\t4\t0\ty\t1\t1\t1.0\n",
                "test.scen:2:15: expected a whole number for the start y, found `y`",
            ),
            (
                "version 1\n1\tm.map\t4\t4\t0\t0\t1\t1\tnan\n",
                "test.scen:2:21: expected a non-negative number for the optimal length, found `nan`",
            ),
            (
                "version 1\n1\tm.map\t4\t4\t0\t0\t4\t1\t1.0\n",
                "test.scen:2: expected the goal (4, 1) inside the 4×4 map",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(message(scen(text)), expected, "scen text {text:?}");
        }
    }

    proptest! {
        #[test]
        fn map_parser_never_panics(text in "(type octile\n)?(height [0-9]{1,3}\n)?(width [0-9]{1,3}\n)?(map\n)?[.@TGSOWx\n\r]{0,200}") {
            let _ = map(&text);
        }

        #[test]
        fn map_parser_never_panics_on_any_text(text in any::<String>()) {
            let _ = map(&text);
        }

        #[test]
        fn scen_parser_never_panics(text in "(version 1\n)?([0-9a-z.\t-]{0,40}\n){0,5}") {
            let _ = scen(&text);
        }

        #[test]
        fn scen_parser_never_panics_on_any_text(text in any::<String>()) {
            let _ = scen(&text);
        }
    }
}
