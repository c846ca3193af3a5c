//! Types and values of the language: what params, template parameters and fields hold.

use crate::units::Duration;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Int,
    Bool,
    Duration,
    Quantity,
    List(Box<Type>),
}

impl Type {
    pub const NAMES: [&'static str; 6] = ["string", "int", "bool", "duration", "quantity", "list"];

    /// How a value of this type is described in messages: "a duration".
    pub fn article(&self) -> String {
        match self {
            Type::Int => "an integer".into(),
            Type::List(t) => format!("a list of {}", t.plural()),
            other => format!("a {other}"),
        }
    }

    fn plural(&self) -> String {
        match self {
            Type::Int => "integers".into(),
            Type::Bool => "booleans".into(),
            Type::List(t) => format!("lists of {}", t.plural()),
            other => format!("{other}s"),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::String => f.write_str("string"),
            Type::Int => f.write_str("int"),
            Type::Bool => f.write_str("bool"),
            Type::Duration => f.write_str("duration"),
            Type::Quantity => f.write_str("quantity"),
            Type::List(t) => write!(f, "list<{t}>"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Duration(Duration),
    Quantity(String),
    List(Vec<Value>),
}

impl Value {
    pub fn ty(&self) -> Type {
        match self {
            Value::Str(_) => Type::String,
            Value::Int(_) => Type::Int,
            Value::Bool(_) => Type::Bool,
            Value::Duration(_) => Type::Duration,
            Value::Quantity(_) => Type::Quantity,
            Value::List(items) => {
                Type::List(Box::new(items.first().map_or(Type::String, Value::ty)))
            }
        }
    }

    /// The text of a scalar, as interpolated into a string; `None` for a list.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Duration(d) => d.to_string(),
            Value::Quantity(q) => q.clone(),
            Value::List(_) => return None,
        })
    }
}
