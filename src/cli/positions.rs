//! Where each field of a YAML document is written, so a problem found in the parsed value
//! can be reported as `file:line:column`, as compilers and editors expect.

use std::collections::HashMap;

use granit_parser::{Event, Parser};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// The position of each field path of one document (`spec.steps[0].setWeight`): the key of
/// a mapping entry, or the start of a list item.
#[derive(Debug, Default)]
pub struct Positions {
    at: HashMap<String, Position>,
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Positions {
    /// Reads `text` (one YAML document). What cannot be parsed is simply not located.
    pub fn of(text: &str) -> Self {
        let mut at = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else {
                break;
            };
            let position = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            let is_node = matches!(
                event,
                Event::Scalar(..)
                    | Event::MappingStart(..)
                    | Event::SequenceStart(..)
                    | Event::Alias(..)
            );
            // The path of this node, when it is a value (not a mapping key).
            let mut node_path = None;
            if is_node {
                match stack.last_mut() {
                    Some(Frame::Mapping { path, key }) => match key.take() {
                        None => {
                            if let Event::Scalar(name, ..) = &event {
                                let full = child(path, name);
                                at.entry(full).or_insert(position);
                                *key = Some(name.to_string());
                            } else {
                                // A complex key: nothing addresses it; its value is skipped.
                                *key = Some(String::new());
                            }
                            if !matches!(event, Event::Scalar(..)) {
                                stack.push(Frame::Mapping {
                                    path: String::from("\u{0}"),
                                    key: None,
                                });
                            }
                            continue;
                        }
                        Some(name) => node_path = Some(child(path, &name)),
                    },
                    Some(Frame::Sequence { path, index }) => {
                        let full = format!("{path}[{index}]");
                        at.entry(full.clone()).or_insert(position);
                        *index += 1;
                        node_path = Some(full);
                    }
                    None => node_path = Some(String::new()),
                }
            }
            match event {
                Event::MappingStart(..) => stack.push(Frame::Mapping {
                    path: node_path.unwrap_or_default(),
                    key: None,
                }),
                Event::SequenceStart(..) => stack.push(Frame::Sequence {
                    path: node_path.unwrap_or_default(),
                    index: 0,
                }),
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Self { at }
    }

    /// Where `path` is written; for a field that is missing, where its nearest written
    /// parent is; the document's first line for the document itself.
    pub fn locate(&self, path: &str) -> Position {
        let mut path = path;
        loop {
            if let Some(p) = self.at.get(path) {
                return *p;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => {
                    return self
                        .at
                        .values()
                        .min_by_key(|p| (p.line, p.column))
                        .copied()
                        .unwrap_or(Position { line: 1, column: 1 });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# a comment
apiVersion: cutover.dev/v1alpha1
kind: Rollout
spec:
  strategy:
    canary:
      steps:
        - setWeight: 20
        - {pause: {duration: 1m}, setWeight: 5}
  template: {spec: {containers: [{name: web, image: web:1}]}}
";

    fn at(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    #[test]
    fn fields_keys_and_list_items_are_located() {
        let p = Positions::of(DOC);
        assert_eq!(p.locate("kind"), at(3, 1));
        assert_eq!(p.locate("spec.strategy.canary.steps"), at(7, 7));
        assert_eq!(p.locate("spec.strategy.canary.steps[0]"), at(8, 11));
        assert_eq!(
            p.locate("spec.strategy.canary.steps[0].setWeight"),
            at(8, 11)
        );
        assert_eq!(
            p.locate("spec.strategy.canary.steps[1].setWeight"),
            at(9, 35)
        );
        assert_eq!(
            p.locate("spec.template.spec.containers[0].image"),
            at(10, 46),
            "flow style"
        );
    }

    #[test]
    fn a_missing_field_points_at_its_nearest_parent() {
        let p = Positions::of(DOC);
        assert_eq!(p.locate("spec.selector"), at(4, 1));
        assert_eq!(p.locate("spec.strategy.canary.steps[5].pause"), at(7, 7));
        assert_eq!(p.locate(""), at(2, 1), "the document: its first field");
    }

    #[test]
    fn broken_yaml_locates_what_came_before() {
        let p = Positions::of("a: 1\nb: [unclosed\n");
        assert_eq!(p.locate("a"), at(1, 1));
    }
}
