//! Block structure: turns logical lines into a tree of keyword nodes.
//!
//! Because the lexer puts every brace on a line of its own, a `{` line opens the
//! block of the keyword line just before it and a `}` line closes it. Unlike
//! keepalived, the tree is built from braces alone, so an unknown keyword with a
//! block can be skipped as a whole instead of corrupting the structure after it.

use crate::diag::{Diagnostic, ErrorClass};
use crate::lexer::{Line, Token};

/// Deepest block nesting accepted; deeper braces are reported and ignored, which
/// keeps recursion (and drop) depth bounded on hostile input.
const MAX_DEPTH: usize = 64;

/// A keyword line and, if a `{` followed it, its block.
#[derive(Debug, Clone)]
pub struct Node {
    /// The keyword line (for an anonymous block: the `{` line).
    pub line: Line,
    /// The block's lines, if the keyword had one.
    pub children: Option<Vec<Node>>,
}

impl Node {
    /// The keyword (first word).
    pub fn kw(&self) -> &str {
        &self.line.tokens[0].text
    }

    /// The first word.
    pub fn head(&self) -> &Token {
        &self.line.tokens[0]
    }

    /// Word `i` (0 = the keyword).
    pub fn word(&self, i: usize) -> Option<&Token> {
        self.line.tokens.get(i)
    }

    /// Word `i` as text.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.line.tokens.get(i).map(|t| t.text.as_str())
    }

    /// Number of words including the keyword.
    pub fn len(&self) -> usize {
        self.line.tokens.len()
    }

    /// Never true (a node always has its keyword); here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.line.tokens.is_empty()
    }

    /// The block's nodes, or an empty slice.
    pub fn kids(&self) -> &[Node] {
        self.children.as_deref().unwrap_or(&[])
    }

    /// True if this node is an anonymous block (a `{` with no keyword before it).
    pub fn is_anonymous(&self) -> bool {
        self.line.is_open()
    }
}

/// Build the tree; structural problems go to `diags`.
pub fn build(lines: Vec<Line>, diags: &mut Vec<Diagnostic>) -> Vec<Node> {
    let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
    // Braces beyond MAX_DEPTH that are being ignored (open count).
    let mut ignored = 0usize;
    let mut opens: Vec<Line> = Vec::new();
    for line in lines {
        if line.is_open() {
            if stack.len() > MAX_DEPTH {
                if ignored == 0 {
                    diags.push(
                        Diagnostic::new(
                            ErrorClass::GeneralError,
                            Some(line.pos().clone()),
                            format!("blocks nested more than {MAX_DEPTH} deep - ignoring the inner blocks"),
                        )
                        .with_snippet(&*line.source),
                    );
                }
                ignored += 1;
                continue;
            }
            let top = stack.last_mut().map(|v| v.last_mut());
            let attach = matches!(top, Some(Some(n)) if n.children.is_none() && !n.line.is_open());
            if !attach {
                diags.push(
                    Diagnostic::new(
                        ErrorClass::UnexpectedBlockStart,
                        Some(line.pos().clone()),
                        "Unexpected '{' - block without a keyword; skipping the block",
                    )
                    .with_snippet(&*line.source),
                );
                if let Some(v) = stack.last_mut() {
                    v.push(Node {
                        line: line.clone(),
                        children: None,
                    });
                }
            }
            opens.push(line);
            stack.push(Vec::new());
        } else if line.is_close() {
            if ignored > 0 {
                ignored -= 1;
                continue;
            }
            if stack.len() <= 1 {
                diags.push(
                    Diagnostic::new(
                        ErrorClass::UnexpectedBlockEnd,
                        Some(line.pos().clone()),
                        "Extra '}' found",
                    )
                    .with_snippet(&*line.source),
                );
                continue;
            }
            close_one(&mut stack);
            opens.pop();
        } else if ignored == 0 {
            if let Some(v) = stack.last_mut() {
                v.push(Node {
                    line,
                    children: None,
                });
            }
        }
    }
    if stack.len() > 1 {
        let n = stack.len() - 1;
        let mut d = Diagnostic::new(
            ErrorClass::MissingBlockEnd,
            opens.last().map(|l| l.pos().clone()),
            format!("There are {n} missing '}}'s or extra '{{'s"),
        );
        if let Some(l) = opens.last() {
            d = d.with_snippet(format!("last unclosed block opened here: {}", l.source));
        }
        diags.push(d);
        while stack.len() > 1 {
            close_one(&mut stack);
        }
    }
    stack.pop().unwrap_or_default()
}

fn close_one(stack: &mut Vec<Vec<Node>>) {
    let Some(kids) = stack.pop() else { return };
    if let Some(parent) = stack.last_mut().and_then(|v| v.last_mut()) {
        parent.children = Some(kids);
    }
}
