//! Inlay hints: the SI value of each literal written in another unit, such as `= 0.3 m`
//! after `30 cm`.

use crate::db::{Db, SourceFile};
use crate::syntax::Span;

use super::values::{format_quantity, unit_of};
use super::walk::walk_file;

/// A label to show at `offset`, after the literal it explains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlayHint {
    pub offset: u32,
    pub label: String,
}

/// Lists hints for the literals that end inside `range`. A literal gets one when its unit has
/// an SI factor other than 1 and its value is not zero, because `0 deg` and `2 m` need none.
pub fn inlay_hints(db: &dyn Db, file: SourceFile, range: Span) -> Vec<InlayHint> {
    let _span = tracing::debug_span!("ide::inlay_hints").entered();
    let mut out = Vec::new();
    for q in walk_file(db, file).quantities {
        if q.unit.is_empty() || q.value == 0.0 || !range.contains(q.span.end) {
            continue;
        }
        let Some(unit) = unit_of(&q.unit) else { continue };
        if (unit.factor - 1.0).abs() <= 1e-12 {
            continue;
        }
        out.push(InlayHint { offset: q.span.end, label: format!("= {}", format_quantity(q.value * unit.factor, unit.dim)) });
    }
    out
}
