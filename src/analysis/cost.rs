//! Worst-case cost of a condition, estimated from its syntax before it ever runs.
//!
//! The CEL evaluator has no step limit of its own, and comprehensions multiply: twelve
//! nested `.all()` over ten-element lists make 10^12 steps in under 400 bytes. The estimate
//! bounds every value's size (list literals by their elements, `result` by
//! [`MAX_RESULT_SAMPLES`], a `map`/`filter` by what it iterates) and charges each
//! comprehension its range's size times its body, so an expression under the budget is
//! also bounded when it runs.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators};

/// Largest estimated cost a condition may have, in evaluation steps.
pub const COST_BUDGET: f64 = 200_000.0;

/// Most samples a condition reads from one query: a larger result is an Error measurement.
pub const MAX_RESULT_SAMPLES: usize = 1_000;

/// Upper bound on a value's size: its length, and the shape of its elements.
#[derive(Clone, Debug, Default, PartialEq)]
struct Shape {
    len: f64,
    elem: Option<Box<Shape>>,
}

impl Shape {
    fn scalar() -> Self {
        Self::default()
    }

    fn list(len: f64, elem: Shape) -> Self {
        Self {
            len,
            elem: Some(Box::new(elem)),
        }
    }

    fn elem(&self) -> Shape {
        self.elem.as_deref().cloned().unwrap_or_default()
    }

    /// The larger of two shapes, field by field.
    fn merge(&self, other: &Shape) -> Shape {
        let elem = match (&self.elem, &other.elem) {
            (Some(a), Some(b)) => Some(Box::new(a.merge(b))),
            (Some(a), None) | (None, Some(a)) => Some(a.clone()),
            (None, None) => None,
        };
        Shape {
            len: self.len.max(other.len),
            elem,
        }
    }
}

/// Names in scope and the shapes bound to them.
type Scope<'a> = Vec<(&'a str, Shape)>;

/// The estimated worst-case cost of evaluating `expr`, in steps.
pub fn estimate(expr: &IdedExpr, max_string: usize) -> f64 {
    let mut scope: Scope<'_> = vec![(
        "result",
        Shape::list(MAX_RESULT_SAMPLES as f64, Shape::scalar()),
    )];
    walk(expr, &mut scope, max_string as f64).0
}

fn walk<'a>(expr: &'a IdedExpr, scope: &mut Scope<'a>, max_string: f64) -> (f64, Shape) {
    match &expr.expr {
        Expr::Unspecified => (0.0, Shape::scalar()),
        Expr::Literal(LiteralValue::String(_) | LiteralValue::Bytes(_)) => (
            1.0,
            Shape {
                len: max_string,
                elem: None,
            },
        ),
        Expr::Literal(_) => (1.0, Shape::scalar()),
        Expr::Ident(name) => {
            let shape = scope
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_default();
            (1.0, shape)
        }
        Expr::List(list) => {
            let mut cost = 1.0 + list.elements.len() as f64;
            let mut elem = Shape::scalar();
            for e in &list.elements {
                let (c, s) = walk(e, scope, max_string);
                cost += c;
                elem = elem.merge(&s);
            }
            (cost, Shape::list(list.elements.len() as f64, elem))
        }
        Expr::Map(map) => {
            let mut cost = 1.0 + map.entries.len() as f64;
            let mut elem = Shape::scalar();
            for entry in &map.entries {
                let parts: Vec<&IdedExpr> = match &entry.expr {
                    EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                    EntryExpr::StructField(f) => vec![&f.value],
                };
                for part in parts {
                    let (c, s) = walk(part, scope, max_string);
                    cost += c;
                    elem = elem.merge(&s);
                }
            }
            (cost, Shape::list(map.entries.len() as f64, elem))
        }
        Expr::Struct(structure) => {
            let mut cost = 1.0;
            for field in &structure.entries {
                if let EntryExpr::StructField(f) = &field.expr {
                    cost += walk(&f.value, scope, max_string).0;
                }
            }
            (cost, Shape::scalar())
        }
        Expr::Select(select) => {
            let (c, s) = walk(&select.operand, scope, max_string);
            let shape = if select.test {
                Shape::scalar()
            } else {
                s.elem()
            };
            (c + 1.0, shape)
        }
        Expr::Call(call) => {
            let mut cost = 1.0;
            let mut shapes = Vec::new();
            for operand in call.target.iter().map(|t| &**t).chain(&call.args) {
                let (c, s) = walk(operand, scope, max_string);
                cost += c;
                shapes.push(s);
            }
            let lens: f64 = shapes.iter().map(|s| s.len).sum();
            match call.func_name.as_str() {
                operators::ADD => {
                    let elem = shapes
                        .iter()
                        .fold(Shape::scalar(), |acc, s| acc.merge(&s.elem()));
                    let shape = Shape {
                        len: lens,
                        elem: shapes
                            .iter()
                            .any(|s| s.elem.is_some())
                            .then(|| Box::new(elem)),
                    };
                    // Building the sum touches what is appended.
                    let appended = shapes.last().map_or(0.0, |s| s.len);
                    (cost + appended, shape)
                }
                operators::INDEX => {
                    let shape = shapes.first().map(Shape::elem).unwrap_or_default();
                    (cost, shape)
                }
                // Ordering compares two scalars (a list there is an error), whatever the
                // operands' sizes; logic reads booleans.
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS
                | operators::LOGICAL_AND
                | operators::LOGICAL_OR
                | operators::LOGICAL_NOT
                | operators::NOT_STRICTLY_FALSE
                | operators::NEGATE
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO => (cost, Shape::scalar()),
                operators::CONDITIONAL => {
                    let branches = shapes
                        .iter()
                        .skip(1)
                        .fold(Shape::scalar(), |acc, s| acc.merge(s));
                    (cost, branches)
                }
                // Regular expressions are compiled from their pattern: charge its length
                // several times over.
                "matches" => (cost + 10.0 * lens, Shape::scalar()),
                // Everything else is at most linear in what it reads: membership,
                // comparisons of lists, string searches, size, conversions.
                _ => (cost + lens, Shape::scalar()),
            }
        }
        Expr::Comprehension(comp) => {
            let (range_cost, range) = walk(&comp.iter_range, scope, max_string);
            let (init_cost, init) = walk(&comp.accu_init, scope, max_string);
            let n = range.len;
            let pushed = usize::from(comp.iter_var2.is_some()) + 1;
            scope.push((comp.iter_var.as_str(), range.elem()));
            if let Some(second) = &comp.iter_var2 {
                scope.push((second.as_str(), range.elem()));
            }
            // First the accumulator as it starts, to learn how much one step adds to it.
            scope.push((comp.accu_var.as_str(), init.clone()));
            let (_, once) = walk(&comp.loop_step, scope, max_string);
            scope.pop();
            let growth = (once.len - init.len).max(0.0);
            let grown = Shape {
                len: init.len + n * growth,
                elem: match (&init.elem, &once.elem) {
                    (None, None) => None,
                    _ => Some(Box::new(init.elem().merge(&once.elem()))),
                },
            };
            scope.push((comp.accu_var.as_str(), grown.clone()));
            let (cond_cost, _) = walk(&comp.loop_cond, scope, max_string);
            let (step_cost, _) = walk(&comp.loop_step, scope, max_string);
            // The result sees the accumulator, not the loop variables.
            scope.truncate(scope.len() - pushed - 1);
            scope.push((comp.accu_var.as_str(), grown));
            let (result_cost, shape) = walk(&comp.result, scope, max_string);
            scope.pop();
            let cost = range_cost + init_cost + n * (1.0 + cond_cost + step_cost) + result_cost;
            (cost, shape)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(source: &str) -> f64 {
        let expr = cel::parser::Parser::default()
            .parse(source)
            .expect("parses");
        estimate(&expr, source.len())
    }

    fn nested_all(depth: usize) -> String {
        let mut e = "result >= 0.0 || true".to_string();
        for i in 0..depth {
            e = format!("[0,1,2,3,4,5,6,7,8,9].all(v{i}, {e})");
        }
        e
    }

    #[test]
    fn ordinary_conditions_are_cheap() {
        for ok in [
            "result < 0.05",
            "result[0] >= 0.99",
            "size(result) == 0 || result.all(x, x < 1.0)",
            "result.exists(x, x > 0.5) && result.filter(x, x > 0.1).size() < 3",
            "result.map(x, x * 2.0).all(y, y < 2.0)",
        ] {
            let c = cost(ok);
            assert!(c <= COST_BUDGET, "{ok}: {c}");
        }
    }

    #[test]
    fn comprehensions_multiply_by_their_range() {
        let one = cost("[1,2,3,4,5,6,7,8,9,10].all(x, x > 0)");
        let two = cost("[1,2,3,4,5,6,7,8,9,10].all(x, [1,2,3,4,5,6,7,8,9,10].all(y, x > y))");
        assert!(two > 9.0 * one, "{one} then {two}");
        assert!(cost("result.all(x, x > 0.0)") >= MAX_RESULT_SAMPLES as f64);
    }

    #[test]
    fn twelve_nested_loops_are_far_over_the_budget() {
        assert!(cost(&nested_all(12)) > 1e12);
        assert!(cost(&nested_all(7)) > COST_BUDGET);
        assert!(cost(&nested_all(4)) <= COST_BUDGET);
    }

    #[test]
    fn lists_built_by_map_carry_their_size_into_later_loops() {
        // Each element of the outer map is a list of the result's size.
        let e = "result.map(x, result).all(l, l.all(y, y > 0.0))";
        assert!(cost(e) > (MAX_RESULT_SAMPLES * MAX_RESULT_SAMPLES) as f64);
        let concat = "(result + result + result).all(x, x > 0.0)";
        assert!(cost(concat) >= 3.0 * MAX_RESULT_SAMPLES as f64);
    }

    #[test]
    fn a_map_accumulator_grows_with_its_range() {
        let e = "[1,2,3,4,5,6,7,8,9,10].map(x, [1,2,3,4,5,6,7,8,9,10].map(y, y)).all(l, l.all(z, z > 0))";
        assert!(cost(e) >= 100.0, "{}", cost(e));
    }
}
